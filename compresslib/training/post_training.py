"""Post-training ("PM") quantization (QD's baseline, seeds.md §1.9): round a trained model onto its grids.

No training: the full-precision model's parameters (except the first and last layer, unless asked) are
quantized with the bucketed uniform quantizer, and the result is evaluated on the test set. The run
directory gets model.pt (the quantized weights), model.packed and record.json (written last), like a
quantized training run, so tables treat PM, QD and DQ alike. The record's kind is ``quantize``; its spec is the
trained model's with the quantization settings this run used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from compresslib.activation_tags import parse_activation
from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader
from compresslib.models import load_model, model_facts, save_model
from compresslib.quantization.pack import PACKED_NAME, pack_and_measure
from compresslib.quantization.shadow import quantize_model_
from compresslib.runs.lifecycle import Run
from compresslib.runs.record import MODEL_NAME
from compresslib.training.loop import evaluate
from compresslib.specs.training import PostTrainingSpec

__all__ = ["post_training_quantize"]

log = logging.getLogger(__name__)

# the quantization settings a post-training run uses (the others are QD's and DQ's training options)
PM_SETTINGS = ("method", "bits", "bucket_size", "quantize_first_last", "skip_by")


def post_training_quantize(spec: PostTrainingSpec, model_path: str | Path, data_path: str | Path,
                           run_dir: str | Path, command: list[str] | None = None, overwrite: bool = False) -> dict:
    """Quantize the trained model in ``model_path``, evaluate it, write its outputs; return the record.
    ``overwrite`` replaces a finished run in ``run_dir``."""
    run = Run(run_dir, command, identity=spec.identity(), outputs=(MODEL_NAME, PACKED_NAME), overwrite=overwrite)
    spec.validate()
    run.check_inputs(data=data_path, source_model=model_path)
    with run.owned() as finished:
        return finished if finished is not None else _quantize(spec, run, Path(model_path), Path(data_path))


def _quantize(spec: PostTrainingSpec, run: Run, model_path: Path, data_path: Path) -> dict:
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
    quant = {key: getattr(spec.quant, key) for key in PM_SETTINGS}

    # evaluated in fp32 (the images' default layout): the rounded weights are the result, not a speed-up
    with run.placed(spec.device, spec.threads, precision="fp32", channels_last=False) as placement:
        run.begin_session()
        loader = DeviceLoader(dataset["test_inputs"], dataset["test_labels"], batch_size=spec.eval_batch_size,
                              augment=False, shuffle=False, device=placement.device, **meta["normalization"])
        model.to(placement.device)
        full_precision_acc, full_precision_loss = evaluate(model, loader)
        example = next(iter(loader))[0][:1]  # a real input: image floats or character ids
        codes = quantize_model_(model, example, quant["bits"], quant["bucket_size"], quant["quantize_first_last"],
                                quant["skip_by"])
        test_acc, test_loss = evaluate(model, loader)
        model.cpu()
    log.info("test accuracy %.4f in full precision, %.4f at %d bits (bucket %s)", full_precision_acc, test_acc,
             quant["bits"], quant["bucket_size"])

    # the device is given back: packing and the files need only the CPU
    recorded_spec = {**source_spec, "kind": "quantize", "quant": quant}
    spec_hash = hashlib.sha256(json.dumps({"source": meta.get("spec_hash"), "quant": quant}, sort_keys=True)
                               .encode()).hexdigest()
    extra = {"dataset": meta["dataset"], "normalization": meta["normalization"], "spec": recorded_spec,
             "spec_hash": spec_hash}
    quantization = {**quant, "full_precision_tensors": [name for name, _ in model.named_parameters()
                                                        if name not in codes],
                    **pack_and_measure(run.run_dir / PACKED_NAME, model, meta["name"], meta["kwargs"], codes,
                                       quant["bits"], quant["bucket_size"], extra)}
    save_model(run.run_dir / MODEL_NAME, model, meta["name"], meta["kwargs"], extra=extra)

    family, bins = parse_activation(source_spec["activation"])
    sections = {
        "activation": source_spec["activation"], "activation_family": family, "bins": bins,
        "metrics": {"final_test_acc": test_acc, "best_test_acc": test_acc, "final_test_loss": test_loss,
                    "full_precision_test_acc": full_precision_acc,
                    "full_precision_test_loss": full_precision_loss, "epochs_run": 0},
        "curve": {key: [] for key in ("epoch", "train_loss", "val_acc", "test_acc", "lr")},
        "model": model_facts(model, meta["name"]), "quantization": quantization,
    }
    record = run.record(kind="quantize", labels=source_spec["labels"], seed=source_spec["seed"],
                        spec=recorded_spec, spec_hash=spec_hash, sections=sections, timing=run.timing(),
                        data=run.input_file(data_path, **dataset["provenance"]),
                        source_model=run.input_file(model_path, name=meta["name"],
                                                    spec_hash=meta.get("spec_hash")))
    return run.finish(record)
