"""Accuracy: a short KD run of each path reaches the same test accuracy within seed noise.

On compresslib's synthetic dataset (compresslib.data.synthetic; 10 classes, so a 100-class pair leaves 90
output classes unused), the pair's teacher is trained once along compresslib's path (cross-entropy, seed 0)
and its views table built from it. Then, per seed, the student is distilled from that teacher along each
path: the reference (DataLoader workers, fp32, teacher online), compresslib's path with the teacher online,
and compresslib's path reading the views table. Every run uses the same optimiser, loss and schedule (the
pair's rate, x0.2 for the last quarter of the epochs) and the same number of epochs; the seed sets the
initial weights, the order and the augmentation. Each student's test accuracy is measured the same way
(the loop's ``evaluate`` in fp32), so differences come from training alone. A path agrees with the
reference when Welch's t-test finds no difference at the 5 % level (p >= 0.05): with a few seeds this
only rules out gross differences.
"""

from __future__ import annotations

import copy
import statistics
import warnings
from dataclasses import dataclass

import torch
from scipy import stats
from torch import nn

from compresslib.bench import result_header
from compresslib.bench.pairs import PAIRS, PATH_LABELS, PATHS, Pair
from compresslib.bench.reference import ReferenceTraining, reference_loader
from compresslib.bench.resident import ResidentTraining, build_views, resident_loader
from compresslib.data.loader import DeviceLoader
from compresslib.data.synthetic import make_synthetic
from compresslib.devices import Placement
from compresslib.training.loop import evaluate
from compresslib.schedules import StepSchedule
from compresslib.training.teacher_views import TeacherViews

__all__ = ["SIZE_DEFAULTS", "AccuracySettings", "run_accuracy", "format_accuracy"]

SIGNIFICANCE = 0.05

# Per device type: training and test images, epochs, seeds, reference workers. The CPU's keep the demo pair's
# check (its 162-view table takes most of it) to a few minutes on 2 cores, the student well above chance.
SIZE_DEFAULTS = {
    "cpu": {"images": 512, "test_images": 1000, "epochs": 12, "seeds": (1, 2, 3, 4, 5), "workers": 2},
    "cuda": {"images": 10_000, "test_images": 2000, "epochs": 15, "seeds": (1, 2, 3, 4, 5), "workers": 4},
}


@dataclass(frozen=True)
class AccuracySettings:
    device: str  # resolved: "cpu", "cuda", "cuda:N"
    pair: str
    epochs: int
    seeds: tuple[int, ...]
    images: int  # synthetic training images
    test_images: int
    workers: int  # the reference DataLoader's worker processes
    compile: bool  # torch.compile on compresslib's path

    def validate(self) -> None:
        """Raise ValueError naming the setting that is out of range."""
        if self.pair not in PAIRS:
            raise ValueError(f"pair must be one of {', '.join(PAIRS)}, got {self.pair!r}")
        if len(set(self.seeds)) != len(self.seeds) or len(self.seeds) < 2:
            raise ValueError(f"seeds must be at least two distinct seeds (seed noise needs a spread), got {self.seeds}")
        for name in ("epochs", "test_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.images < PAIRS[self.pair].batch_size:
            raise ValueError(f"images ({self.images}) must hold at least one batch of pair {self.pair} "
                             f"({PAIRS[self.pair].batch_size})")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


def run_accuracy(settings: AccuracySettings, placement: Placement) -> dict:
    """Train the teacher, then the student along every path for every seed; return accuracies and the comparison."""
    settings.validate()
    pair, device = PAIRS[settings.pair], torch.device(settings.device)
    data = make_synthetic(train_size=settings.images, test_size=settings.test_images, seed=0)
    split = (data["train_inputs"], data["train_labels"],
             resident_loader(data["test_inputs"], data["test_labels"], pair, train=False, device=device))
    torch.manual_seed(0)
    teacher = pair.build(pair.teacher)
    teacher_accuracy, status = _train(teacher, "resident", 0, settings, *split)
    compile_status = {status}
    teacher.eval().requires_grad_(False)
    views = build_views(copy.deepcopy(teacher), resident_loader(*split[:2], pair, train=True, device=device), pair)
    runs = {path: [] for path in PATHS}
    for seed in settings.seeds:
        for path in PATHS:
            torch.manual_seed(seed)
            student = pair.build(pair.student)
            cached = path == "resident_cached"
            online = None if cached else copy.deepcopy(teacher).to(memory_format=torch.contiguous_format)
            accuracy, status = _train(student, path, seed, settings, *split, teacher=online,
                                      views=views if cached else None)
            runs[path].append(accuracy)
            compile_status.add(status)
    return result_header("accuracy", settings, placement) | {
        "compile": sorted(compile_status),
        "teacher_test_accuracy": teacher_accuracy,
        "paths": {path: {"test_accuracy": accuracies, "mean": statistics.mean(accuracies),
                         "std": statistics.stdev(accuracies)} for path, accuracies in runs.items()},
        "against_reference": {path: _compare(runs["reference"], runs[path]) for path in PATHS[1:]},
    }


def _train(model: nn.Module, path: str, seed: int, settings: AccuracySettings, images: torch.Tensor,
           labels: torch.Tensor, test_loader: DeviceLoader, teacher: nn.Module | None = None,
           views: TeacherViews | None = None) -> tuple[float, str]:
    """Train ``model`` along ``path`` for the settings' epochs (KD from ``teacher`` online or from ``views``, else
    cross-entropy); return its fp32 test accuracy and what ran of torch.compile (``CompiledModels.used``)."""
    pair, device = PAIRS[settings.pair], torch.device(settings.device)
    torch.manual_seed(seed)  # the same dropout and order draws for every path
    model.to(device)
    optimizer = pair.optimizer(model)
    if path == "reference":
        loader = reference_loader(images, labels, pair, train=True, workers=settings.workers, device=device)
        training = ReferenceTraining(model, loader, optimizer, device, teacher)
    else:
        loader = resident_loader(images, labels, pair, train=True, device=device, seed=seed)
        training = ResidentTraining(model, loader, optimizer, teacher=teacher, views=views, compiled=settings.compile)
    _train_epochs(training, optimizer, len(loader), settings.epochs, pair)
    used = training.models.used if isinstance(training, ResidentTraining) else "off"
    return evaluate(model, test_loader)[0], used


def _train_epochs(training: ReferenceTraining | ResidentTraining, optimizer: torch.optim.Optimizer,
                  steps_per_epoch: int, epochs: int, pair: Pair) -> None:
    schedule = StepSchedule(pair.lr, [max(1, 3 * epochs // 4)], gamma=0.2)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(epoch)
        training.run(steps_per_epoch)


def _compare(reference: list[float], other: list[float]) -> dict:
    """Mean difference and Welch's t-test; equal constant samples (p undefined) count as agreeing."""
    with warnings.catch_warnings():  # scipy warns of precision loss when a path scores the same for every seed
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_ind(other, reference, equal_var=False).pvalue)
    return {"difference": statistics.mean(other) - statistics.mean(reference), "p_value": p_value,
            "within_seed_noise": not p_value < SIGNIFICANCE}


def format_accuracy(result: dict) -> str:
    """The readable report of a ``run_accuracy`` result."""
    settings = result["settings"]
    width = 7 * len(settings["seeds"]) + 2  # "0.1234 " per seed
    lines = [
        f"accuracy check: pair {settings['pair']} ({PAIRS[settings['pair']].teacher} -> "
        f"{PAIRS[settings['pair']].student}) on synthetic data, {settings['images']} training / "
        f"{settings['test_images']} test images, {settings['epochs']} epochs, seeds "
        f"{', '.join(map(str, settings['seeds']))}, {result['hardware']['device']} "
        f"({result['hardware']['device_name']}), torch.compile: {', '.join(result['compile'])}",
        f"teacher (compresslib's path, seed 0): test accuracy {result['teacher_test_accuracy']:.4f}",
        "",
        f"{'student path':<20}{'mean ± std':>18}  {'per seed':<{width}}against the reference",
    ]
    for path, summary in result["paths"].items():
        runs = " ".join(f"{accuracy:.4f}" for accuracy in summary["test_accuracy"])
        verdict = ""
        if path in result["against_reference"]:
            comparison = result["against_reference"][path]
            verdict = (f"{comparison['difference']:+.4f} (Welch p = {comparison['p_value']:.2f}): "
                       f"{'within' if comparison['within_seed_noise'] else 'OUTSIDE'} seed noise")
        lines.append(f"{PATH_LABELS[path]:<20}{summary['mean']:>9.4f} ± {summary['std']:.4f}  "
                     f"{runs:<{width}}{verdict}")
    return "\n".join(lines)
