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

The state (every evaluated candidate, a step's proposals before they are evaluated, which candidates are the best
``top_k``, whose weights wait in ``candidates/``) is saved after every candidate, so a killed search resumes without
re-evaluating any finished candidate; candidate training and proposals are pure functions of the seed, so on CPU a
resumed search ends exactly as an uninterrupted one. Outputs: ``search.csv`` (one row per candidate),
``top/arch-<r>.pt`` (the rank-r candidate as an ``esnac_net`` model file with its trained weights) and
``top/arch-<r>.json``, and ``record.json`` (written last).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.catalog import get_dataset_info
from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader, epoch_seed, holdout_split
from compresslib.devices import evaluation_batch_size
from compresslib.esnac.kernel import fit_kernel, propose
from compresslib.esnac.space import Action, LayerGraph, build_student, compress, encode, extract_graph, \
    parameter_count, random_action
from compresslib.specs.esnac import SEARCH_STATE, SEARCH_TABLE, TOP_DIR, SearchSpec, arch_file
from compresslib.io import atomic_open, load_torch, save_torch, write_json
from compresslib.losses import logit_mse
from compresslib.models import count_parameters, load_model, save_model
from compresslib.runs.lifecycle import Run, cpu_state
from compresslib.runs.progress import Progress
from compresslib.settings import spec_hash

__all__ = ["SEARCH_COLUMNS", "search", "reward"]

log = logging.getLogger(__name__)

CANDIDATES_DIR = "candidates"  # while the search runs: the weights of the best candidates so far, one file each
SEARCH_COLUMNS = ("index", "step", "slot", "params", "compression", "times", "val_acc", "reward", "best_reward",
                  "acquisition", "kernel_points", "kernel_fit_steps", "removed", "skips", "train_seconds")


def reward(params: int, teacher_params: int, acc: float, teacher_acc: float) -> tuple[float, float]:
    """ESNAC's ``(c, f)``: compression ``c = 1 - params/teacher_params`` and reward ``f = c(2-c) acc/teacher_acc``."""
    compression = 1.0 - params / teacher_params
    return compression, compression * (2.0 - compression) * acc / teacher_acc


def search(spec: SearchSpec, data_path: str | Path, teacher_path: str | Path, run_dir: str | Path,
           command: list[str] | None = None, overwrite: bool = False) -> dict:
    """Run (or resume) one search; write search.csv, top/arch-<r>.{pt,json} and record.json into ``run_dir``
    (``overwrite``: replacing a finished search there)."""
    run = Run(run_dir, command, identity=_identity(spec), outputs=(SEARCH_TABLE, TOP_DIR), state_name=SEARCH_STATE,
              work=(CANDIDATES_DIR,),
              overwrite=overwrite)
    spec.validate()
    run.check_inputs(data=data_path, teacher=teacher_path)
    with run.owned() as finished:
        if finished is not None:
            return finished
        with run.placed(spec.device, spec.threads, spec.precision, spec.channels_last):
            return _Search(spec, run, Path(data_path), Path(teacher_path)).search()


def _identity(spec: SearchSpec) -> dict:
    """What a resumed search must share with the saved one besides its input files: every setting (flat, so that a
    refusal names the setting that differs)."""
    identity = spec.identity()
    kernel = identity.pop("kernel")
    return {**identity, **{f"kernel.{key}": value for key, value in kernel.items()}}


@dataclass
class _Split:
    loader: DeviceLoader
    labels: torch.Tensor


class _Search:
    def __init__(self, spec: SearchSpec, run: Run, data_path: Path, teacher_path: Path) -> None:
        self.spec, self.run, self.run_dir = spec, run, run.run_dir
        device = self.device = run.device
        self.autocast, self.memory_format = run.precision.autocast, run.precision.memory_format
        channels_last = run.precision.channels_last

        teacher, meta = load_model(teacher_path)
        if meta.get("dataset") != spec.dataset:
            raise ValueError(f"teacher {teacher_path} was trained on {meta.get('dataset')!r}, the search is on "
                             f"{spec.dataset!r}")
        kind = get_dataset_info(spec.dataset).kind
        if kind != "image":
            raise ValueError(f"ESNAC searches image classifiers; {spec.dataset} is a {kind} dataset")
        self.teacher_meta = meta
        self.teacher_file = run.input_file(teacher_path, name=meta["name"])
        self.graph: LayerGraph = extract_graph(teacher)  # on the CPU copy: the weights the students slice
        self.teacher_params = count_parameters(teacher)
        self.teacher_encoding = encode(compress(self.graph, self._identity_action()))

        dataset = load_dataset(data_path)
        if dataset["name"] != spec.dataset:
            raise ValueError(f"{data_path} holds dataset {dataset['name']!r}, not {spec.dataset!r}")
        self.data_file = run.input_file(data_path, **dataset["provenance"])
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

    def search(self) -> dict:
        spec = self.spec
        state = self._load_state()
        resumed = len(state["evaluated"])  # the candidates of earlier sessions, not timed on this device
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
                progress = Progress.measured(len(state["evaluated"]), spec.steps * spec.candidates_per_step,
                                             [r["train_seconds"] for r in state["evaluated"][resumed:]],
                                             unit="candidate")
                log.info("%s  step %d candidate %d: %d params (c %.4f), held-out acc %.4f, reward %.4f (best %.4f)",
                         progress.describe(), step, slot, row["params"], row["compression"], row["val_acc"],
                         row["reward"], max(r["reward"] for r in state["evaluated"]))
        return self._finish(state)

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
                loss = (logit_mse(logits, self.teacher_logits[index_batch]) if spec.loss == "logit_mse"
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
                best_weights = cpu_state(student)
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
            best_weights = cpu_state(student)
        return row, best_weights

    # ---- state and outputs ----------------------------------------------------------------------------------

    def _load_state(self) -> dict:
        state = self.run.resume()
        if state is None:
            state = {"evaluated": [], "pending": None, "top": []}
        else:
            log.info("resuming: %d candidates evaluated", len(state["evaluated"]))
            for index in state["top"]:  # a damaged one is refused now, not after the rest of the search ran
                self._top_weights(index)
        self.run.begin_session(evaluated_before=len(state["evaluated"]))
        return state

    def _save_state(self, state: dict) -> None:
        self.run.save_state({key: state[key] for key in ("evaluated", "pending", "top")})

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

    def _top_weights(self, index: int) -> dict:
        return load_torch(self._weights_path(index), check=True, what="ESNAC candidate's weights")

    def _finish(self, state: dict) -> dict:
        spec, run_dir = self.spec, self.run_dir
        rows = state["evaluated"]
        best = 0.0
        for row in rows:
            best = max(best, row["reward"])
            row["best_reward"] = best
        with atomic_open(run_dir / SEARCH_TABLE, newline="") as handle:
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
            net.load_state_dict(self._top_weights(row["index"]))
            kwargs = {**architecture.model_kwargs(), "num_classes": num_classes, "activation": "relu"}
            facts = {key: row[key] for key in ("index", "step", "slot", "params", "compression", "times", "val_acc",
                                               "reward")}
            summary = {"rank": rank, **facts, "teacher_params": self.teacher_params,
                       "teacher_val_acc": self.teacher_val_acc, "action": row["action"],
                       "removed_layers": list(architecture.removed),
                       "added_skips": [list(p) for p in architecture.skips],
                       "layers": [_layer_text(layer) for layer in architecture.layers]}
            save_model(top_dir / arch_file(rank), net, "esnac_net", kwargs,
                       extra={"dataset": spec.dataset, "normalization": self.teacher_meta["normalization"],
                              "esnac": {k: v for k, v in summary.items() if k != "layers"}})
            write_json(top_dir / arch_file(rank, "json"), summary)
            top.append({"rank": rank, "file": f"{TOP_DIR}/{arch_file(rank)}", **facts})
        sections = {
            "strategy": spec.strategy,
            "teacher": {"name": self.teacher_meta["name"], "params": self.teacher_params,
                        "val_acc": self.teacher_val_acc, "layers": self.graph.size,
                        "groups": self.graph.group_widths, "removable": len(self.graph.removable),
                        "skip_candidates": len(self.graph.skip_pairs)},
            "candidates": len(rows), "best_reward": max(r["reward"] for r in rows), "top": top,
            "curve": {"index": [r["index"] for r in rows], "reward": [r["reward"] for r in rows],
                      "best_reward": [r["best_reward"] for r in rows]},
        }
        record = self.run.record(kind="esnac_search", labels=spec.labels, seed=spec.seed, spec=spec.to_dict(),
                                 spec_hash=spec_hash(spec), sections=sections,
                                 timing=self.run.timing(train_s=sum(r["train_seconds"] for r in rows)),
                                 data=self.data_file, teacher_model=self.teacher_file)
        return self.run.finish(record)  # the weights of the top candidates are in top/ now


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
