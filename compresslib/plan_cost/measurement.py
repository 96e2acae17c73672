"""Measuring one cost group of ``compresslib.plan_cost``: compresslib's own code on stand-in data of the real shape.

Two epochs per measurement (the second, warm one is scaled up): a training group runs the training loop with a
random-weight teacher of the real architecture (or its table of logits), compiled where its spec's ``compile`` asks
(the first epoch's extra seconds are the job's compile start-up, rate ``startup``); a views group runs the teacher on
every view of a share of the images; a search group runs random candidates of the real teacher and fits one learned
kernel; a translation group trains on the first pairs of the prepared corpus.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compresslib.catalog import get_dataset_info
from compresslib.data.corpus import load_corpus
from compresslib.data.datasets import save_dataset
from compresslib.data.text import VOCAB_SIZE
from compresslib.devices import place
from compresslib.esnac.kernel import fit_kernel, propose
from compresslib.esnac.search import search
from compresslib.esnac.space import build_student, compress, encode, extract_graph, random_action
from compresslib.specs.esnac import SearchSpec
from compresslib.io import load_torch, save_torch, sha256_file
from compresslib.models import create_model, save_model
from compresslib.settings import build_settings
from compresslib.training.loop import train
from compresslib.specs.training import ESNAC_MODEL, build_spec
from compresslib.training.teacher_views import compute_teacher_views, save_teacher_views, view_count
from compresslib.specs.translation import TranslationSpec
from compresslib.translation.train import train_translation

__all__ = ["CostGroup", "Context", "measure", "json_key", "device_name", "DEFAULT_EXAMPLES", "MEASURED_EPOCHS"]

MEASURED_EPOCHS = 2  # the last is the warm one that is scaled up
DEFAULT_EXAMPLES = {"cpu": 256, "cuda": 8192}  # stand-in training and test examples per measurement
ESNAC_CANDIDATES = 3  # random candidates of a searched teacher timed per search measurement
VIEWS_SHARE = 16  # a teacher_views measurement runs the teacher on every view of examples / VIEWS_SHARE images


def json_key(value: Any) -> str:
    """``value`` as sorted JSON: the hashable key of a cost group's settings."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class CostGroup:
    """What one measurement covers. ``kind`` is training | teacher_views | search | esnac_full_train | translation;
    ``spec`` the JSON of the run's settings that its cost depends on; ``teacher`` the JSON of the teacher's model
    identity."""

    kind: str
    spec: str
    teacher: str = "null"

    def values(self) -> dict:
        return json.loads(self.spec)


@dataclass
class Context:
    config: dict
    workdir: Path
    device: str
    examples: int
    threads: int
    compile_used: Counter = field(default_factory=Counter)  # what the training measurements ran (the record's words)


def measure(group: CostGroup, context: Context) -> dict[str, float]:
    """Seconds per unit of every unit of ``group``, measured on the context's device."""
    return {"training": _measure_training, "teacher_views": _measure_teacher_views, "search": _measure_search,
            "esnac_full_train": _measure_esnac_full_train, "translation": _measure_translation}[group.kind](group,
                                                                                                          context)


def _measure_training(group: CostGroup, context: Context, init: Path | None = None) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    lit = values.get("lit") and values["lit"] | {"epochs": MEASURED_EPOCHS, "milestones": []}
    spec = build_spec(values | {"epochs": MEASURED_EPOCHS, "lit": lit, "schedule": "constant",
                                "device": context.device, "threads": context.threads})
    data = _standin_dataset(context, spec.dataset)
    normalization = _normalization(spec.dataset, spec.mean, spec.std)
    if spec.quant is not None and spec.quant.method == "dq":  # DQ learns the points of a trained student
        init = _standin_model(context, teacher, spec.dataset, normalization)
    teacher_path = _standin_model(context, teacher, spec.dataset, normalization) if teacher else None
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        views = None
        if spec.teacher_outputs == "cached":  # a table of the right shape: looking a row up costs the same
            views = Path(run_dir) / "views.pt"
            classes = get_dataset_info(spec.dataset).num_classes
            save_teacher_views(views, torch.randn(context.examples, view_count(), classes), pad=4, augment=True,
                               teacher={"path": str(teacher_path), "sha256": sha256_file(teacher_path)},
                               dataset={"path": str(data), "sha256": sha256_file(data)}, normalization=normalization)
        record = train(spec, data, Path(run_dir) / "run", teacher_path=teacher_path, init_path=init,
                       teacher_views_path=views)
        history = _read_csv(Path(run_dir) / "run" / "history.csv")
    n = context.examples
    warm = history[MEASURED_EPOCHS - 1::MEASURED_EPOCHS]  # the last epoch of each phase (LIT: phase 1, then 2)
    used = record["timing"].get("compile", {}).get("used", ["off"])  # a loop that records none compiles none
    context.compile_used.update(used)
    rates = {"train": float(warm[-1]["train_seconds"]) / n, "eval": float(warm[-1]["eval_seconds"]) / n,
             "startup": _compile_seconds(history) if any(u.startswith("on") for u in used) else 0.0}
    if spec.lit is not None:
        rates |= {"lit_train": float(warm[0]["train_seconds"]) / n, "lit_eval": float(warm[0]["eval_seconds"]) / n}
    return rates


def _compile_seconds(history: list[dict]) -> float:
    """What compiling added: each phase's first epoch's seconds over its warm epoch's (the same examples; each input
    shape's graphs compile at their first use, all in the first epoch)."""
    def seconds(row: dict) -> float:
        return float(row["train_seconds"]) + float(row["eval_seconds"])
    extra = sum(seconds(first) - seconds(warm) for first, warm in zip(history[::MEASURED_EPOCHS],
                                                                      history[MEASURED_EPOCHS - 1::MEASURED_EPOCHS]))
    return max(0.0, extra)


def _measure_teacher_views(group: CostGroup, context: Context) -> dict[str, float]:
    """The teacher on every view of a share of the stand-in images, as workflow_scripts/teacher_views.py runs it."""
    values, teacher = group.values(), json.loads(group.teacher)
    normalization = _normalization(values["dataset"], values["mean"], values["std"])
    images = max(1, context.examples // VIEWS_SHARE)
    inputs = torch.randint(0, 256, (images, *get_dataset_info(values["dataset"]).input_shape), dtype=torch.uint8)
    with place(context.device) as placement:
        model = _model(teacher, values["dataset"]).to(placement.device)
        tick = time.perf_counter()
        compute_teacher_views(model, inputs, **normalization, device=placement.device).cpu()
        return {"view": (time.perf_counter() - tick) / (images * view_count())}


def _measure_search(group: CostGroup, context: Context) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    spec = build_settings(SearchSpec, values | {"strategy": "random", "steps": 1, "candidates_per_step":
                                                ESNAC_CANDIDATES, "epochs": MEASURED_EPOCHS, "top_k": 1,
                                                "holdout_size": context.examples // 4, "device": context.device,
                                                "threads": context.threads})
    normalization = _normalization(spec.dataset)
    teacher_path = _standin_model(context, teacher, spec.dataset, normalization)
    # the reward divides by the teacher's held-out accuracy: label the stand-in images as the teacher does
    data = _standin_dataset(context, spec.dataset, labeller=(_model(teacher, spec.dataset), normalization))
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        search(spec, data, teacher_path, run_dir)
        rows = _read_csv(Path(run_dir) / "search.csv")
    # a candidate's epoch trains on the split less the holdout and scores the holdout: charged per example of both
    candidate = sum(float(row["train_seconds"]) for row in rows) / (len(rows) * MEASURED_EPOCHS * context.examples)
    graph = extract_graph(_model(teacher, spec.dataset))
    rng = random.Random(0)
    history = max(2, values["steps"] * values["candidates_per_step"] // 2)  # a kernel sees half the history on average
    sequences = [encode(compress(graph, random_action(graph, rng))) for _ in range(history)]
    actions = [encode(compress(graph, random_action(graph, rng))) for _ in range(spec.acquisition_samples)]
    with place(context.device) as placement:
        device = placement.device
        tick = time.perf_counter()
        kernel = fit_kernel([s.to(device) for s in sequences], torch.rand(history, device=device), seed=0,
                            **dataclasses.asdict(spec.kernel))
        propose(kernel, [a.to(device) for a in actions])
        proposal = time.perf_counter() - tick
    return {"candidate": candidate, "proposal": proposal}


def _measure_esnac_full_train(group: CostGroup, context: Context) -> dict[str, float]:
    """A random candidate of the search, trained like ESNAC's full training."""
    values, teacher = group.values(), json.loads(group.teacher)
    graph = extract_graph(_model(teacher, values["dataset"]))
    architecture = compress(graph, random_action(graph, random.Random(1)))
    normalization = _normalization(values["dataset"])
    kwargs = {**architecture.model_kwargs(), "num_classes": get_dataset_info(values["dataset"]).num_classes,
              "activation": "relu"}
    init = context.workdir / f"esnac-{_digest(group)}.pt"
    save_model(init, build_student(graph, architecture), ESNAC_MODEL, kwargs,
               extra={"dataset": values["dataset"], "normalization": normalization})
    spec = values | {"kind": "esnac", "model": ESNAC_MODEL, "model_kwargs": architecture.model_kwargs(),
                     **normalization}
    training = CostGroup("training", json_key(spec))
    return _measure_training(training, context, init=init)


def _measure_translation(group: CostGroup, context: Context) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    subset = _corpus_subset(context, Path(values.pop("corpus_file")))
    if values["kind"] == "seq_distill":  # trained on the corpus's own targets: a targets file's pairs cost the same
        values["kind"] = "distill" if values["kd"] else "undistilled"
    spec = build_settings(TranslationSpec, values | {"epochs": MEASURED_EPOCHS, "device": context.device,
                                                     "threads": context.threads})
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        teacher_path = None
        if teacher is not None:  # random weights of the teacher's architecture, made for this corpus file
            corpus = load_corpus(subset, mmap=True)
            kwargs = {"src_vocab": corpus["vocab_sizes"]["src"], "tgt_vocab": corpus["vocab_sizes"]["tgt"],
                      **teacher["model_kwargs"]}
            teacher_path = Path(run_dir) / "teacher.pt"
            save_model(teacher_path, create_model(teacher["model"], **kwargs), teacher["model"], kwargs,
                       extra={"corpus": values["corpus"], "corpus_sha256": sha256_file(subset)})
        record = train_translation(spec, subset, Path(run_dir) / "run", teacher_path=teacher_path)
        warm = _read_csv(Path(run_dir) / "run" / "history.csv")[-1]
    stats = load_corpus(subset, mmap=True)["stats"]
    valid = record["metrics"]["validation_split"]
    translated = record["translations"].values()
    return {"train_token": float(warm["train_seconds"]) / float(warm["train_tokens"]),
            "eval_token": float(warm["eval_seconds"]) / (stats[valid]["tgt_tokens"] + stats[valid]["pairs"]),
            "translate": sum(t["translate_s"] for t in translated) / sum(t["sentences"] for t in translated)}


def _corpus_subset(context: Context, corpus: Path) -> Path:
    """The first ``examples`` pairs of every split of a prepared corpus: its tokenisers, vocabularies, lengths."""
    out = context.workdir / f"corpus-{_digest(str(corpus))}.pt"
    if out.is_file():
        return out
    payload = load_torch(corpus)
    for split, entry in payload["splits"].items():
        count = min(context.examples, len(entry["src_text"]))
        for side in ("src", "tgt"):
            offsets = entry[f"{side}_offsets"][:count + 1].clone()
            entry[f"{side}_ids"] = entry[f"{side}_ids"][:int(offsets[-1])].clone()
            entry[f"{side}_offsets"] = offsets
            entry[f"{side}_text"] = entry[f"{side}_text"][:count]
        payload["stats"][split] |= {"pairs": count, "src_tokens": entry["src_ids"].numel(),
                                    "tgt_tokens": entry["tgt_ids"].numel()}
    save_torch(out, payload, checksum=True)  # the runs measured on it check it like a prepared corpus
    load_corpus(out)  # the subset passes the same checks as the corpus
    return out


def _normalization(dataset: str, mean: list | None = None, std: list | None = None) -> dict:
    info = get_dataset_info(dataset)
    if info.kind != "image":
        return {"mean": None, "std": None}
    return {"mean": list(mean or info.mean), "std": list(std or info.std)}


def _standin_dataset(context: Context, name: str,
                     labeller: tuple[torch.nn.Module, dict] | None = None) -> Path:
    """Random inputs of the dataset's shape (a generator's length from the config); random labels, or those a
    ``(model, normalization)`` predicts for them."""
    path = context.workdir / (f"data-{name}.pt" if labeller is None else f"data-{name}-{id(labeller[0])}.pt")
    if path.is_file():
        return path
    info = get_dataset_info(name)
    shape = tuple(context.config["data"][name]["length"] if size is None else size for size in info.input_shape)
    generator = torch.Generator().manual_seed(0)
    arrays: dict[str, Any] = {"classes": [str(c) for c in range(info.num_classes)]}
    for split in ("train", "test"):
        inputs = torch.randint(0, 256 if info.kind == "image" else VOCAB_SIZE, (context.examples, *shape),
                               generator=generator, dtype=torch.uint8)
        arrays[f"{split}_inputs"] = inputs
        if labeller is None:
            arrays[f"{split}_labels"] = torch.randint(0, info.num_classes, (context.examples,), generator=generator)
        else:
            model, normalization = labeller
            mean, std = (torch.tensor(normalization[key]).view(1, -1, 1, 1) for key in ("mean", "std"))
            with torch.inference_mode():
                arrays[f"{split}_labels"] = model.eval()((inputs / 255 - mean) / std).argmax(1)
    save_dataset(path, name, arrays, {"source": "compresslib.plan_cost stand-in: random inputs"})
    return path


def _model(identity: dict, dataset: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(identity["model"], num_classes=get_dataset_info(dataset).num_classes,
                        activation=identity["activation"], **identity["model_kwargs"])


def _standin_model(context: Context, identity: dict, dataset: str, normalization: dict) -> Path:
    """Random weights of a teacher's (or DQ's trained student's) architecture, as a model file of that dataset."""
    path = context.workdir / f"model-{_digest((identity, dataset, normalization))}.pt"
    if not path.is_file():
        kwargs = {"num_classes": get_dataset_info(dataset).num_classes, "activation": identity["activation"],
                  **identity["model_kwargs"]}
        save_model(path, _model(identity, dataset), identity["model"], kwargs,
                   extra={"dataset": dataset, "normalization": normalization})
    return path


def _digest(value: Any) -> str:
    return hashlib.sha256(json_key(value if not isinstance(value, CostGroup) else dataclasses.asdict(value))
                          .encode()).hexdigest()[:16]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def device_name(device: torch.device) -> str:
    """The device the estimate is for, as its table's header names it."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
