"""Post-training ("PM") quantization (QD's baseline, seeds.md §1.9): round a trained model onto its grids.

No training: the full-precision model's parameters (except the first and last layer, unless asked) are
quantized with the bucketed uniform quantizer, and the result is evaluated on the test set. The run
directory gets model.pt (the quantized weights), model.packed and record.json (written last), like a
quantized training run, so tables treat PM, QD and DQ alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from compresslib import provenance
from compresslib.activations import parse_activation
from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader
from compresslib.devices import place
from compresslib.io import sha256_file, write_json
from compresslib.models import load_model, save_model
from compresslib.quantization.pack import PACKED_NAME, pack_and_measure
from compresslib.quantization.shadow import SKIP_BY, quantize_model_
from compresslib.quantization.uniform import check_settings
from compresslib.training.loop import RECORD_FORMAT, evaluate, model_facts

__all__ = ["post_training_quantize"]

log = logging.getLogger(__name__)


def post_training_quantize(model_path: str | Path, data_path: str | Path, run_dir: str | Path, bits: int,
                           bucket_size: int | None, quantize_first_last: bool = False, skip_by: str = "layers",
                           device: str = "auto", eval_batch_size: int = 1000,
                           command: list[str] | None = None) -> dict:
    """Quantize the trained model in ``model_path``, evaluate it, write its outputs; return the record."""
    started_at, wall_start = provenance.now_iso(), time.perf_counter()
    check_settings(bits, bucket_size)
    if skip_by not in SKIP_BY:
        raise ValueError(f"skip_by must be one of {', '.join(SKIP_BY)}, got {skip_by!r}")
    model, meta = load_model(model_path)
    source_spec = meta.get("spec")
    if source_spec is None:
        raise ValueError(f"{model_path} has no training spec: post-training quantization needs a model trained "
                         "by compresslib (its dataset, normalisation and labels)")
    if source_spec.get("quant") is not None:
        raise ValueError(f"{model_path} is already quantized ({source_spec['quant']['method']}); "
                         "post-training quantization starts from a full-precision model")
    dataset = load_dataset(data_path)
    if dataset["name"] != meta["dataset"]:
        raise ValueError(f"{data_path} holds dataset {dataset['name']!r}, but {model_path} was trained on "
                         f"{meta['dataset']!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    with place(device) as placement:
        loader = DeviceLoader(dataset["test_inputs"], dataset["test_labels"], batch_size=eval_batch_size,
                              augment=False, shuffle=False, device=placement.device, **meta["normalization"])
        model.to(placement.device)
        full_precision_acc, full_precision_loss = evaluate(model, loader)
        example = next(iter(loader))[0][:1]  # a real input: image floats or character ids
        codes = quantize_model_(model, example, bits, bucket_size, quantize_first_last, skip_by)
        test_acc, test_loss = evaluate(model, loader)
        hardware = provenance.hardware(placement, torch.get_num_threads())
    model.cpu()
    log.info("test accuracy %.4f in full precision, %.4f at %d bits (bucket %s)", full_precision_acc, test_acc,
             bits, bucket_size)

    quant = {"method": "pm", "bits": bits, "bucket_size": bucket_size, "quantize_first_last": quantize_first_last,
             "skip_by": skip_by}
    spec = {**source_spec, "quant": quant}
    spec_hash = hashlib.sha256(json.dumps({"source": meta.get("spec_hash"), "quant": quant}, sort_keys=True)
                               .encode()).hexdigest()
    extra = {"dataset": meta["dataset"], "normalization": meta["normalization"], "spec": spec, "spec_hash": spec_hash}
    quantization = {**quant, "full_precision_tensors": [name for name, _ in model.named_parameters() if name not in codes],
                    **pack_and_measure(run_dir / PACKED_NAME, model, meta["name"], meta["kwargs"], codes, bits,
                                       bucket_size, extra)}
    save_model(run_dir / "model.pt", model, meta["name"], meta["kwargs"], extra=extra)

    family, bins = parse_activation(source_spec["activation"])
    source = {"path": str(model_path), "sha256": sha256_file(model_path), "name": meta["name"],
              "spec_hash": meta.get("spec_hash")}
    record = {
        "format": RECORD_FORMAT, "kind": "quantize", "run_dir": str(run_dir), "labels": dict(source_spec["labels"]),
        "activation": source_spec["activation"], "activation_family": family, "bins": bins,
        "seed": source_spec["seed"], "spec": spec, "spec_hash": spec_hash,
        "metrics": {"final_test_acc": test_acc, "best_test_acc": test_acc, "final_test_loss": test_loss,
                    "full_precision_test_acc": full_precision_acc, "full_precision_test_loss": full_precision_loss,
                    "epochs_run": 0},
        "curve": {key: [] for key in ("epoch", "train_loss", "val_acc", "test_acc", "lr")},
        "model": model_facts(model, meta["name"]),
        "quantization": quantization,
        "timing": {"wall_s": time.perf_counter() - wall_start},
        "hardware": hardware,
        "provenance": provenance.run_provenance(
            {"path": str(data_path), "sha256": sha256_file(data_path), **dataset["provenance"]}, command, started_at,
            source_model=source),
    }
    write_json(run_dir / "record.json", record)
    return record
