"""ESNAC's search: Bayesian optimisation over compressed architectures of a teacher, or random search.

Paper: Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019
(seeds.md §3.5-3.6). Each of ``steps`` steps proposes ``candidates_per_step`` architectures and evaluates them:

- **esnac**: per candidate a fresh learned kernel (compresslib.esnac.kernel) is fitted to the teacher at reward 0
  plus a random part of the history (each record kept with probability ``history_keep``), and proposes the
  best of ``acquisition_samples`` random actions by expected improvement.
- **random**: each candidate is one random action (the proposal distribution the acquisition samples from).

Both strategies evaluate candidates the same way, so they compare at equal budget: the student inherits the
teacher's sliced weights, trains ``epochs`` epochs with Adam on the search split (the training set minus the
held-out part, no augmentation) against the teacher's logits (MSE; the teacher's logits for the split are
computed once), and its accuracy is its best held-out accuracy over those epochs. The candidates of a step
see the same batches, as ESNAC trains them jointly. The reward is ``c(2-c)a`` with ``c = 1 - params/params_teacher``
and ``a = acc/acc_teacher`` (the teacher's accuracy on the held-out split).

The state (every evaluated candidate, a step's proposals before they are evaluated, which candidates are the
best ``top_k``, whose weights wait in ``candidates/``) is saved after every candidate, so a killed search
resumes without re-evaluating any finished candidate; candidate training and proposals are pure functions of the seed, so on CPU a resumed
search ends exactly as an uninterrupted one. Outputs: ``search.csv`` (one row per candidate), ``top/arch-<r>.pt``
(the rank-r candidate as an ``esnac_net`` model file with its trained weights) and ``top/arch-<r>.json``, and
``record.json`` (written last).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslib import provenance
from compresslib.data.datasets import get_dataset_info, load_dataset
from compresslib.data.loader import HOLDOUT_SPLITS, DeviceLoader, epoch_seed, holdout_split
from compresslib.devices import Placement, evaluation_batch_size, place
from compresslib.esnac.kernel import fit_kernel, propose
from compresslib.esnac.space import Action, LayerGraph, build_student, compress, encode, extract_graph, \
    parameter_count, random_action
from compresslib.io import atomic_open, load_torch, load_versioned, save_torch, sha256_file, write_json
from compresslib.models import count_parameters, load_model, save_model
from compresslib.training.checkpoint import check_resumable
from compresslib.training.spec import require, spec_hash

__all__ = ["KernelSpec", "SearchSpec", "STRATEGIES", "STATE_NAME", "TOP_DIR", "SEARCH_COLUMNS", "search", "reward"]

log = logging.getLogger(__name__)

STRATEGIES = ("esnac", "random")
SEARCH_LOSSES = ("logit_mse", "cross_entropy")
STATE_NAME = "search-state.pt"
TOP_DIR = "top"  # arch-<rank>.pt and .json of the best candidates, written when the search ends
CANDIDATES_DIR = "candidates"  # while the search runs: the weights of the best candidates so far, one file each
STATE_FORMAT = 1
RECORD_FORMAT = 1
SEARCH_COLUMNS = ("index", "step", "slot", "params", "compression", "times", "val_acc", "reward", "best_reward",
                  "acquisition", "kernel_points", "kernel_fit_steps", "removed", "skips", "train_seconds")


@dataclass
class KernelSpec:
    """The learned kernel (seeds.md §3.5: ke_* and co_alpha/co_beta)."""

    hidden_size: int = 64  # per direction of the 4-layer bi-LSTM
    num_layers: int = 4
    lr: float = 1e-3  # Adam on the LSTM weights
    weight_decay: float = 5e-4
    alpha: float = 0.01  # RBF width: k = exp(-|e_a - e_b|^2 / (2 alpha))
    beta: float = 0.05  # GP noise
    max_steps: int = 100
    ma_weight: float = 0.5  # stop once j > 5 and |ma - ll| < tolerance, ma <- w*ll + (1-w)*ma
    tolerance: float = 1e-3


@dataclass
class SearchSpec:
    """Every setting of one search; defaults are ESNAC's options.py."""

    dataset: str = "cifar100"
    strategy: str = "esnac"  # esnac (learned-kernel BO) or random (the same budget of random proposals)
    seed: int = 127  # ESNAC's seed_everything(127)
    steps: int = 20  # co_step_n
    candidates_per_step: int = 8  # co_kernel_n: one kernel (esnac) per candidate
    acquisition_samples: int = 1000  # ac_search_n: random actions scored by EI per kernel
    history_keep: float = 0.5  # co_gamma: probability that a history record enters a kernel
    top_k: int = 4  # co_best_n: candidates kept for full training
    epochs: int = 10  # tr_se_epochs
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    weight_decay: float = 5e-4
    loss: str = "logit_mse"  # "logit_mse" to the teacher's logits (ESNAC's 'KD') or "cross_entropy" on labels
    holdout_size: int = 5000  # the search's held-out split of the training set
    holdout_split: str = "last"  # ESNAC: the last 5,000 training images; "random" uses holdout_seed
    holdout_seed: int = 0
    eval_batch_size: int = 1000
    kernel: KernelSpec = field(default_factory=KernelSpec)
    # ---- runtime (not part of the search's identity) ----
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None
    threads: int = 0
    labels: dict = field(default_factory=dict)

    def validate(self) -> None:
        require(self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {', '.join(STRATEGIES)}")
        require(self.loss in SEARCH_LOSSES, "loss", self.loss, f"one of {', '.join(SEARCH_LOSSES)}")
        for key in ("steps", "candidates_per_step", "acquisition_samples", "top_k", "epochs", "batch_size",
                    "holdout_size", "eval_batch_size"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(0 < self.history_keep <= 1, "history_keep", self.history_keep, "a number in (0, 1]")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.holdout_split in HOLDOUT_SPLITS, "holdout_split", self.holdout_split,
                f"one of {', '.join(HOLDOUT_SPLITS)}")
        require(self.precision in ("auto", "fp32", "bf16"), "precision", self.precision, "one of auto, fp32, bf16")
        require(self.kernel.max_steps >= 1, "kernel.max_steps", self.kernel.max_steps, "an integer >= 1")
        for key in ("alpha", "beta", "lr", "tolerance"):
            require(getattr(self.kernel, key) > 0, f"kernel.{key}", getattr(self.kernel, key), "a number > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        return {key: value for key, value in self.to_dict().items()
                if key not in ("device", "precision", "channels_last", "threads", "labels")}


def reward(params: int, teacher_params: int, acc: float, teacher_acc: float) -> tuple[float, float]:
    """ESNAC's ``(c, f)``: compression ``c = 1 - params/teacher_params`` and reward ``f = c(2-c) acc/teacher_acc``."""
    compression = 1.0 - params / teacher_params
    return compression, compression * (2.0 - compression) * acc / teacher_acc


def search(spec: SearchSpec, data_path: str | Path, teacher_path: str | Path, run_dir: str | Path,
           command: list[str] | None = None) -> dict:
    """Run (or resume) one search; write search.csv, top/arch-<r>.{pt,json} and record.json into ``run_dir``."""
    started_at, wall_start = provenance.now_iso(), time.perf_counter()
    spec.validate()
    with place(spec.device) as placement:
        return _Search(spec, Path(data_path), Path(teacher_path), Path(run_dir), placement).run(
            command, started_at, wall_start)


@dataclass
class _Split:
    loader: DeviceLoader
    labels: torch.Tensor


class _Search:
    def __init__(self, spec: SearchSpec, data_path: Path, teacher_path: Path, run_dir: Path,
                 placement: Placement) -> None:
        self.spec, self.run_dir, self.placement = spec, run_dir, placement
        self.data_path, self.teacher_path = data_path, teacher_path
        device = self.device = placement.device
        if device.type == "cpu" and spec.threads:
            torch.set_num_threads(spec.threads)
        use_bf16 = spec.precision == "bf16" or (spec.precision == "auto" and device.type == "cuda")
        self.autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)
        channels_last = device.type == "cuda" if spec.channels_last is None else spec.channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        teacher, meta = load_model(teacher_path)
        if meta.get("dataset") != spec.dataset:
            raise ValueError(f"teacher {teacher_path} was trained on {meta.get('dataset')!r}, the search is on "
                             f"{spec.dataset!r}")
        kind = get_dataset_info(spec.dataset).kind
        if kind != "image":
            raise ValueError(f"ESNAC searches image classifiers; {spec.dataset} is a {kind} dataset")
        self.teacher_meta = meta
        self.graph: LayerGraph = extract_graph(teacher)  # on the CPU copy: the weights the students slice
        self.teacher_params = count_parameters(teacher)
        self.teacher_encoding = encode(compress(self.graph, self._identity_action()))

        dataset = load_dataset(data_path)
        if dataset["name"] != spec.dataset:
            raise ValueError(f"{data_path} holds dataset {dataset['name']!r}, not {spec.dataset!r}")
        self.data_provenance = dataset["provenance"]
        inputs, labels = dataset["train_inputs"], dataset["train_labels"]
        keep, held_out = holdout_split(len(labels), spec.holdout_size, spec.holdout_seed, spec.holdout_split)
        norm = meta.get("normalization")
        if not norm or norm.get("mean") is None:
            raise ValueError(f"teacher {teacher_path} records no input normalisation; write teachers with the "
                             "training loop (their model.pt carries the normalisation their inputs had)")
        args = dict(mean=norm["mean"], std=norm["std"], device=device, channels_last=channels_last)
        # The training split yields example indices as "labels": they look up the teacher's logits and the labels.
        self.train = _Split(DeviceLoader(inputs[keep], torch.arange(len(keep)), batch_size=spec.batch_size,
                                         augment=False, shuffle=True,
                                         drop_last=len(keep) % spec.batch_size == 1, **args),
                            labels[keep].to(device))
        self.eval_batch = evaluation_batch_size(spec.eval_batch_size, device)
        self.val = DeviceLoader(inputs[held_out], labels[held_out], batch_size=self.eval_batch,
                                augment=False, shuffle=False, **args)
        teacher = teacher.to(device, memory_format=self.memory_format).eval()
        self.teacher_logits = self._logits(teacher, self.train.loader)
        self.teacher_val_acc = _accuracy(teacher, self.val, self.autocast)
        if self.teacher_val_acc == 0:
            raise ValueError(f"teacher {teacher_path} classifies none of the {len(held_out)} held-out images "
                             "correctly; the reward divides by its accuracy")
        log.info("teacher %s: %d parameters, %d layers, %d groups, %d removable, %d skip candidates; held-out "
                 "accuracy %.4f", meta["name"], self.teacher_params, self.graph.size, len(self.graph.group_widths),
                 len(self.graph.removable), len(self.graph.skip_pairs), self.teacher_val_acc)

    def _identity_action(self) -> Action:
        return Action((), tuple(0.0 for _ in self.graph.group_widths), ())

    @torch.inference_mode()
    def _logits(self, teacher: nn.Module, loader: DeviceLoader) -> torch.Tensor:
        """The teacher's logits for every training example of the split, in index order, computed once."""
        logits = torch.empty(loader.num_examples, get_dataset_info(self.spec.dataset).num_classes, device=self.device)
        plan = loader.epoch_plan(0)
        index = torch.arange(loader.num_examples, device=self.device)
        with self.autocast:
            for start in range(0, loader.num_examples, self.eval_batch):
                batch = index[start:start + self.eval_batch]
                logits[batch] = teacher(loader.transform(batch, plan)).float()
        return logits

    # ---- the loop -----------------------------------------------------------------------------------------

    def run(self, command: list[str] | None, started_at: str, wall_start: float) -> dict:
        spec = self.spec
        state = self._load_state()
        for step in range(spec.steps):
            done = {row["slot"] for row in state["evaluated"] if row["step"] == step}
            if len(done) == spec.candidates_per_step:
                continue
            if state["pending"] is None or state["pending"]["step"] != step:
                state["pending"] = {"step": step, "proposals": self._propose(step, state["evaluated"])}
                self._save_state(state)
            for slot, proposal in enumerate(state["pending"]["proposals"]):
                if slot in done:
                    continue
                row, weights = self._evaluate(step, slot, proposal, len(state["evaluated"]))
                state["evaluated"].append(row)
                dropped = self._keep_if_top(state, row, weights)
                self._save_state(state)
                for index in dropped:  # after the state stops naming them
                    self._weights_path(index).unlink(missing_ok=True)
                log.info("step %d candidate %d: %d params (c %.4f), held-out acc %.4f, reward %.4f (best %.4f)",
                         step, slot, row["params"], row["compression"], row["val_acc"], row["reward"],
                         max(r["reward"] for r in state["evaluated"]))
        return self._finish(state, command, started_at, wall_start)

    def _propose(self, step: int, history: list[dict]) -> list[dict]:
        """The step's actions with what chose them (the kernel's EI, points and fitting steps for esnac)."""
        proposals = []
        for slot in range(self.spec.candidates_per_step):
            rng = random.Random(epoch_seed(self.spec.seed, step, stream=2 + slot))
            if self.spec.strategy == "random":
                proposals.append({"action": random_action(self.graph, rng).to_dict()})
                continue
            kept = [row for row in history if rng.random() < self.spec.history_keep]
            sequences = [self.teacher_encoding] + [encode(compress(self.graph, Action.from_dict(row["action"])))
                                                   for row in kept]
            targets = torch.tensor([0.0] + [row["reward"] for row in kept])
            kernel_spec = self.spec.kernel
            kernel = fit_kernel([s.to(self.device) for s in sequences], targets.to(self.device),
                                seed=epoch_seed(self.spec.seed, step, stream=100 + slot),
                                **dataclasses.asdict(kernel_spec))
            actions = [random_action(self.graph, rng) for _ in range(self.spec.acquisition_samples)]
            best, ei = propose(kernel, [encode(compress(self.graph, a)).to(self.device) for a in actions])
            proposals.append({"action": actions[best].to_dict(), "acquisition": ei, "kernel_points": len(sequences),
                              "kernel_fit_steps": len(kernel.log_likelihoods)})
        return proposals

    def _evaluate(self, step: int, slot: int, proposal: dict, index: int) -> tuple[dict, dict]:
        """Train one candidate; its row for search.csv and its best epoch's weights."""
        spec = self.spec
        action = Action.from_dict(proposal["action"])
        architecture = compress(self.graph, action)
        student = build_student(self.graph, architecture).to(self.device, memory_format=self.memory_format)
        optimizer = torch.optim.Adam(student.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        loader = self.train.loader
        loader.seed = epoch_seed(spec.seed, step)  # every candidate of a step sees the same batches
        started = time.perf_counter()
        best_acc, best_weights, accs = -1.0, None, []
        for epoch in range(spec.epochs):
            student.train()
            loader.set_epoch(epoch)
            for inputs, index_batch in loader:
                with self.autocast:
                    logits = student(inputs).float()
                loss = (F.mse_loss(logits, self.teacher_logits[index_batch]) if spec.loss == "logit_mse"
                        else F.cross_entropy(logits, self.train.labels[index_batch]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if not math.isfinite(loss.item()):
                log.warning("step %d candidate %d diverged in epoch %d; its accuracy stays %.4f", step, slot, epoch,
                            max(best_acc, 0.0))
                break
            acc = _accuracy(student, self.val, self.autocast)
            accs.append(acc)
            if acc > best_acc:  # the weights that earned the recorded accuracy (ESNAC kept the last epoch's)
                best_acc = acc
                best_weights = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        best_acc = max(best_acc, 0.0)
        params = parameter_count(architecture)
        compression, value = reward(params, self.teacher_params, best_acc, self.teacher_val_acc)
        row = {"index": index, "step": step, "slot": slot, "params": params, "compression": compression,
               "times": 1.0 / (1.0 - compression), "val_acc": best_acc, "reward": value,
               "acquisition": proposal.get("acquisition"), "kernel_points": proposal.get("kernel_points"),
               "kernel_fit_steps": proposal.get("kernel_fit_steps"), "removed": len(architecture.removed),
               "skips": len(architecture.skips), "train_seconds": time.perf_counter() - started,
               "epoch_val_acc": accs, "action": action.to_dict()}
        if best_weights is None:
            best_weights = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        return row, best_weights

    # ---- state and outputs ----------------------------------------------------------------------------------

    def _identity(self) -> dict:
        """What a resumed search must share with the saved one: every setting (flat, so that a refusal names the
        setting that differs), the teacher and the data."""
        kernel = {f"kernel.{key}": value for key, value in self.spec.identity().pop("kernel").items()}
        settings = {key: value for key, value in self.spec.identity().items() if key != "kernel"}
        return {**settings, **kernel, "teacher_sha256": sha256_file(self.teacher_path),
                "data_sha256": sha256_file(self.data_path)}

    def _load_state(self) -> dict:
        path = self.run_dir / STATE_NAME
        identity = self._identity()
        if not path.exists():
            return {"identity": identity, "evaluated": [], "pending": None, "top": [], "sessions": [self._session(0)]}
        state = load_versioned(path, STATE_FORMAT, "ESNAC search state", "delete it to start the search over")
        check_resumable(state["identity"], identity, path)
        state["sessions"].append(self._session(len(state["evaluated"])))
        log.info("resuming: %d candidates evaluated", len(state["evaluated"]))
        return state

    def _session(self, evaluated: int) -> dict:
        return {"started_at": provenance.now_iso(), "evaluated_before": evaluated,
                **provenance.job_identity(), "device": str(self.device)}

    def _save_state(self, state: dict) -> None:
        save_torch(self.run_dir / STATE_NAME, {"format": STATE_FORMAT, **state})

    def _keep_if_top(self, state: dict, row: dict, weights: dict) -> list[int]:
        """Keep the weights of the ``top_k`` best-rewarded candidates (ties: the earlier one), each in its own file
        written once, so the state saved after every candidate stays small. Returns the indices that dropped out."""
        top = [r["index"] for r in _ranked(state["evaluated"])[:self.spec.top_k]]
        if row["index"] in top:
            save_torch(self._weights_path(row["index"]), weights)
        dropped = [index for index in state["top"] if index not in top]
        state["top"] = top
        return dropped

    def _weights_path(self, index: int) -> Path:
        return self.run_dir / CANDIDATES_DIR / f"{index}.pt"

    def _finish(self, state: dict, command: list[str] | None, started_at: str, wall_start: float) -> dict:
        spec, run_dir = self.spec, self.run_dir
        rows = state["evaluated"]
        best = 0.0
        for row in rows:
            best = max(best, row["reward"])
            row["best_reward"] = best
        with atomic_open(run_dir / "search.csv", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=SEARCH_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        num_classes = get_dataset_info(spec.dataset).num_classes
        top_dir = run_dir / TOP_DIR
        top_dir.mkdir(exist_ok=True)
        top = []
        for rank, row in enumerate(_ranked(rows)[:spec.top_k]):
            architecture = compress(self.graph, Action.from_dict(row["action"]))
            net = build_student(self.graph, architecture)
            net.load_state_dict(load_torch(self._weights_path(row["index"])))
            kwargs = {**architecture.model_kwargs(), "num_classes": num_classes, "activation": "relu"}
            facts = {key: row[key] for key in ("index", "step", "slot", "params", "compression", "times", "val_acc",
                                               "reward")}
            summary = {"rank": rank, **facts, "teacher_params": self.teacher_params,
                       "teacher_val_acc": self.teacher_val_acc, "action": row["action"],
                       "removed_layers": list(architecture.removed),
                       "added_skips": [list(p) for p in architecture.skips],
                       "layers": [_layer_text(layer) for layer in architecture.layers]}
            save_model(top_dir / f"arch-{rank}.pt", net, "esnac_net", kwargs,
                       extra={"dataset": spec.dataset, "normalization": self.teacher_meta["normalization"],
                              "esnac": {k: v for k, v in summary.items() if k != "layers"}})
            write_json(top_dir / f"arch-{rank}.json", summary)
            top.append({"rank": rank, "file": f"{TOP_DIR}/arch-{rank}.pt", **facts})
        record = {
            "format": RECORD_FORMAT, "kind": "esnac_search", "run_dir": str(run_dir), "labels": dict(spec.labels),
            "seed": spec.seed, "strategy": spec.strategy, "spec": spec.to_dict(), "spec_hash": spec_hash(spec),
            "teacher": {"name": self.teacher_meta["name"], "params": self.teacher_params,
                        "val_acc": self.teacher_val_acc, "layers": self.graph.size,
                        "groups": self.graph.group_widths, "removable": len(self.graph.removable),
                        "skip_candidates": len(self.graph.skip_pairs)},
            "candidates": len(rows), "best_reward": max(r["reward"] for r in rows), "top": top,
            "curve": {"index": [r["index"] for r in rows], "reward": [r["reward"] for r in rows],
                      "best_reward": [r["best_reward"] for r in rows]},
            "timing": {"wall_s": time.perf_counter() - wall_start,
                       "train_s": sum(r["train_seconds"] for r in rows), "sessions": state["sessions"]},
            "hardware": provenance.hardware(self.placement, torch.get_num_threads()),
            "provenance": provenance.run_provenance(
                {"path": str(self.data_path), "sha256": sha256_file(self.data_path), **self.data_provenance},
                command, started_at,
                teacher_model={"path": str(self.teacher_path), "sha256": sha256_file(self.teacher_path),
                               "name": self.teacher_meta["name"]}),
        }
        write_json(run_dir / "record.json", record)  # last: its presence means "finished"
        (run_dir / STATE_NAME).unlink()
        shutil.rmtree(run_dir / CANDIDATES_DIR)
        return record


def _ranked(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (-r["reward"], r["index"]))


def _layer_text(layer: Any) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(layer).items() if k != "kind" and v)
    return f"{layer.kind}({settings})"


@torch.inference_mode()
def _accuracy(model: nn.Module, loader: DeviceLoader, autocast: torch.autocast) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    with autocast:
        for inputs, labels in loader:
            correct += (model(inputs).argmax(1) == labels).sum()
    return correct.item() / loader.num_examples
