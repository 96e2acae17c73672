"""Speed: images per second and peak memory of the reference path (a) and compresslib's path (b), and b/a.

For each pair and task the benchmark runs one *measurement* per path, each in a fresh process started with
``spawn`` (so that its peak memory is its own and nothing is shared between paths), on random uint8
CIFAR-shaped images with random labels: the throughput of these models does not depend on the pixels.
Tasks:

* ``teacher``: cross-entropy training of the teacher.
* ``ce``: cross-entropy training of the student (the baseline a KD epoch is compared with).
* ``kd``: KD training of the student. The reference runs the fp32 teacher online; compresslib's path runs it
  online under its autocast (``resident``) and reads its logits from a views table (``resident_cached``).
  The table is built by a measurement of its own (task ``views``, its logits written to a scratch file and
  read back by the cached KD measurement), because the workflow builds it once per teacher, in a job of its
  own, and all of that teacher's students read it.
* ``inference``: evaluation of the teacher and of the student over the images as a test split.

Training measurements take ``warmup`` untimed steps (compilation, cuDNN autotuning, worker start-up),
then ``steps`` timed steps at the pair's batch size. Inference takes one untimed pass over the images, then
as many timed passes as evaluate ``steps`` x batch images (one at least); the untimed part's seconds are reported
too (``warmup_seconds``, ``warmup_images``: compilation shows there).
The timed span starts and ends with ``torch.cuda.synchronize`` on CUDA. Peak memory is, on CUDA,
``torch.cuda.max_memory_allocated`` (reset when the measurement starts); on the CPU the measuring process's
peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``), which includes the interpreter and
torch themselves and leaves out DataLoader worker processes. (``ru_maxrss`` would not do: a process started
by ``fork`` + ``exec`` inherits its parent's peak.)
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from compresslib.bench import result_header
from compresslib.bench.pairs import PAIRS, PATH_LABELS, PATHS, Pair
from compresslib.bench.reference import ReferenceTraining, reference_evaluate, reference_loader
from compresslib.bench.resident import ResidentTraining, build_views, resident_loader
from compresslib.devices import Placement, device_precision
from compresslib.io import load_torch, save_torch
from compresslib.training.compiled import CompiledModels
from compresslib.training.loop import evaluate
from compresslib.training.teacher_views import TeacherViews

__all__ = ["TASKS", "SIZE_DEFAULTS", "Measurement", "SpeedSettings", "plan_measurements", "measure", "prepare",
           "random_images", "run_speed", "format_speed"]

log = logging.getLogger(__name__)

TASKS = ("teacher", "ce", "kd", "inference")
MIB = 2**20

# Per device type: pairs, images, timed steps, warmup steps, reference workers. The CPU's fit 2 cores in a few
# minutes for the demo pair; CUDA's are CIFAR's 50,000 training images.
SIZE_DEFAULTS = {
    "cpu": {"pairs": ("demo",), "images": 256, "steps": 30, "warmup": 5, "workers": 2},
    "cuda": {"pairs": ("conv", "wrn"), "images": 50_000, "steps": 200, "warmup": 30, "workers": 4},
}


@dataclass(frozen=True)
class Measurement:
    pair: str
    task: str  # one of TASKS, or "views": building the teacher's views table
    path: str  # one of PATHS
    model: str  # the registered model trained, evaluated or (views) run


@dataclass(frozen=True)
class SpeedSettings:
    device: str  # resolved: "cpu", "cuda", "cuda:N"
    pairs: tuple[str, ...]
    tasks: tuple[str, ...]
    images: int  # random images held as the training (and, for inference, test) split
    steps: int  # timed training steps
    warmup: int  # untimed training steps before them
    workers: int  # the reference DataLoader's worker processes
    compile: bool  # torch.compile on compresslib's path
    seed: int = 0  # images, labels and initial weights

    def validate(self) -> None:
        """Raise ValueError naming the setting that is out of range."""
        for name in ("images", "steps", "warmup"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        unknown = [name for name in self.pairs if name not in PAIRS] + [t for t in self.tasks if t not in TASKS]
        if unknown or not self.pairs or not self.tasks:
            raise ValueError(f"pairs must be among {', '.join(PAIRS)} and tasks among {', '.join(TASKS)}, one at least "
                             f"of each; got pairs {list(self.pairs)}, tasks {list(self.tasks)}")
        for name in self.pairs:
            if self.images < PAIRS[name].batch_size:
                raise ValueError(f"images ({self.images}) must hold at least one batch of pair {name} "
                                 f"({PAIRS[name].batch_size})")


def plan_measurements(pairs: tuple[str, ...], tasks: tuple[str, ...]) -> list[Measurement]:
    """Every measurement the pairs and tasks need, in order (a views table before the KD run that reads it)."""
    plan = []
    for name in pairs:
        pair = PAIRS[name]
        for task in tasks:
            if task == "inference":
                plan += [Measurement(name, task, path, model) for model in (pair.teacher, pair.student)
                         for path in PATHS[:2]]
                continue
            model = pair.teacher if task == "teacher" else pair.student
            plan += [Measurement(name, task, path, model) for path in PATHS[:2]]
            if task == "kd":
                plan += [Measurement(name, "views", "resident", pair.teacher),
                         Measurement(name, task, "resident_cached", model)]
    return plan


def random_images(count: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(count, 3, 32, 32)`` images and labels drawn at random (speed does not depend on the pixels)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
            torch.randint(0, num_classes, (count,), generator=generator))


def measure(measurement: Measurement, settings: SpeedSettings, scratch: str | Path) -> dict:
    """Run one measurement in this process (``run_speed`` gives each a fresh one); ``scratch`` holds views tables."""
    return prepare(measurement, settings, scratch)()


def prepare(measurement: Measurement, settings: SpeedSettings, scratch: str | Path,
            pair: Pair | None = None) -> Callable[[], dict]:
    """Build one measurement in this process and take its untimed warmup (compilation included); return the function
    that takes the timed span and returns the figures. ``pair`` stands in for the registered pair named by
    ``measurement.pair`` (which still names the views table in ``scratch``). Apart, several measurements can be
    prepared side by side and timed one at a time (compresslib.bench.turns)."""
    device = torch.device(settings.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    compiled = settings.compile and measurement.path != "reference" and measurement.task != "views"
    return _prepare(measurement, pair or PAIRS[measurement.pair], settings, device, compiled, Path(scratch))


def _prepare(measurement: Measurement, pair: Pair, settings: SpeedSettings, device: torch.device, compiled: bool,
             scratch: Path) -> Callable[[], dict]:
    """As :func:`prepare`; the figures say under ``compile`` what ran (``CompiledModels.used``: the models compile as
    a training job's do, and where compiling fails in the warmup, the timed span runs eager)."""
    _reset_peak_memory(device)
    start = {"start_memory_bytes": _peak_memory(device)}  # just reset: what the process holds now
    torch.manual_seed(settings.seed)
    images, labels = random_images(settings.images, pair.info.num_classes, settings.seed)
    views_path = scratch / f"{measurement.pair}-views.pt"
    if measurement.task == "views":  # the workflow's teacher_views job: build the table, write it
        loader = resident_loader(images, labels, pair, train=True, device=device, seed=settings.seed)
        teacher = pair.build(pair.teacher)

        def build() -> dict:
            views, seconds = _timed(lambda: build_views(teacher, loader, pair), device)
            save_torch(views_path, views.logits.cpu())
            count = views.logits.shape[0] * views.logits.shape[1]
            return _figures(count, seconds, device, unit="views") | start | {"table_bytes": views.logits.nbytes,
                                                                              "compile": "off"}
        return build
    if measurement.task == "inference":
        evaluate_once, models = _evaluation(measurement, pair, images, labels, settings, device, compiled)
        _, warmup_s = _timed(evaluate_once, device)  # one untimed pass
        passes = -(-settings.steps * pair.batch_size // settings.images)  # what training measurements train, at least
        warmup = {"warmup_images": settings.images, "warmup_seconds": warmup_s}

        def evaluate_passes() -> dict:
            _, seconds = _timed(lambda: [evaluate_once() for _ in range(passes)], device)
            return _figures(passes * settings.images, seconds, device) | start | warmup | {"compile": models.used}
        return evaluate_passes
    training = _training(measurement, pair, images, labels, settings, device, compiled, views_path)
    _, warmup_s = _timed(lambda: training.run(settings.warmup), device)
    warmup = {"warmup_images": settings.warmup * pair.batch_size, "warmup_seconds": warmup_s}

    def train_steps() -> dict:
        _, seconds = _timed(lambda: training.run(settings.steps), device)
        used = training.models.used if isinstance(training, ResidentTraining) else "off"
        return _figures(settings.steps * pair.batch_size, seconds, device) | start | warmup | {"compile": used}
    return train_steps


def _training(measurement: Measurement, pair: Pair, images: torch.Tensor, labels: torch.Tensor,
              settings: SpeedSettings, device: torch.device, compiled: bool,
              views_path: Path) -> ReferenceTraining | ResidentTraining:
    model = pair.build(measurement.model).to(device)
    optimizer = pair.optimizer(model)
    online = measurement.task == "kd" and measurement.path != "resident_cached"
    teacher = pair.build(pair.teacher).to(device) if online else None
    if measurement.path == "reference":
        loader = reference_loader(images, labels, pair, train=True, workers=settings.workers, device=device)
        return ReferenceTraining(model, loader, optimizer, device, teacher)
    loader = resident_loader(images, labels, pair, train=True, device=device, seed=settings.seed)
    views = None
    if measurement.path == "resident_cached":  # the table the "views" measurement wrote, as a student run loads it
        views = TeacherViews(load_torch(views_path).to(device), pad=loader.pad)
    return ResidentTraining(model, loader, optimizer, teacher=teacher, views=views, compiled=compiled)


def _evaluation(measurement: Measurement, pair: Pair, images: torch.Tensor, labels: torch.Tensor,
                settings: SpeedSettings, device: torch.device, compiled: bool
                ) -> tuple[Callable[[], float], CompiledModels]:
    """One evaluation pass over the images, as a function returning the accuracy, and the models it runs."""
    model = pair.build(measurement.model).to(device)
    if measurement.path == "reference":
        loader = reference_loader(images, labels, pair, train=False, workers=settings.workers, device=device)
        return lambda: reference_evaluate(model, loader, device), CompiledModels(model, compiled=False)
    loader = resident_loader(images, labels, pair, train=False, device=device)
    autocast, memory_format, _ = device_precision(device)
    models = CompiledModels(model.to(memory_format=memory_format), compiled=compiled)
    return lambda: models.evaluate(lambda used: evaluate(used, loader, autocast)[0]), models


def _timed(run: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """``run()``'s result and its seconds, the device's queued work included."""
    _synchronize(device)
    tick = time.perf_counter()
    result = run()
    _synchronize(device)
    return result, time.perf_counter() - tick


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _figures(count: int, seconds: float, device: torch.device, unit: str = "images") -> dict:
    return {f"{unit}_per_s": count / seconds, "seconds": seconds, unit: count,
            "peak_memory_bytes": _peak_memory(device)}


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets the peak resident set to the current one


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError("/proc/self/status has no VmHWM line")


def run_speed(settings: SpeedSettings, placement: Placement) -> dict:
    """Run every measurement of ``settings`` (each in a fresh spawned process); return the full result."""
    settings.validate()
    if torch.device(settings.device).type == "cpu" and not Path("/proc/self/status").exists():
        raise ValueError("the CPU's peak memory is read from /proc/self/status, which this system lacks (Linux only)")
    plan = plan_measurements(settings.pairs, settings.tasks)
    context = multiprocessing.get_context("spawn")
    measurements = []
    with tempfile.TemporaryDirectory(prefix="compresslib-bench-") as scratch:
        for index, measurement in enumerate(plan, start=1):
            log.info("[%d/%d] %s", index, len(plan), measurement)
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                figures = pool.submit(measure, measurement, settings, scratch).result()
            measurements.append(dataclasses.asdict(measurement) | figures)
    return result_header("speed", settings, placement) | {
        "measurements": measurements,
        "ratios": _ratios(measurements),
        "teacher_reuse": [_teacher_reuse(name, measurements, settings.images) for name in settings.pairs
                          if "kd" in settings.tasks and "ce" in settings.tasks],
    }


def _ratios(measurements: list[dict]) -> list[dict]:
    """compresslib's figures over the reference's (b/a) for every task, model and compresslib path."""
    reference = {(m["pair"], m["task"], m["model"]): m for m in measurements if m["path"] == "reference"}
    ratios = []
    for m in measurements:
        base = reference.get((m["pair"], m["task"], m["model"]))
        if m["path"] == "reference" or base is None:
            continue
        ratios.append({"pair": m["pair"], "task": m["task"], "model": m["model"], "path": m["path"],
                       "reference_images_per_s": base["images_per_s"], "images_per_s": m["images_per_s"],
                       "speed_ratio": m["images_per_s"] / base["images_per_s"],
                       "reference_peak_memory_bytes": base["peak_memory_bytes"],
                       "peak_memory_bytes": m["peak_memory_bytes"],
                       "memory_ratio": m["peak_memory_bytes"] / base["peak_memory_bytes"]})
    return ratios


def _teacher_reuse(name: str, measurements: list[dict], images: int) -> dict:
    """KD with the cached table against the online teacher and against a cross-entropy epoch, for one pair.

    Epoch times are for an epoch of ``images`` images; the table's build time scales with the images too, so the
    break-even point (student epochs, over all the teacher's students, after which the table has paid for
    itself) does not depend on them."""
    speed = {(m["task"], m["path"]): m for m in measurements if m["pair"] == name}
    ce, online, cached = (speed[key]["images_per_s"] for key in
                          (("ce", "resident"), ("kd", "resident"), ("kd", "resident_cached")))
    build_s = speed[("views", "resident")]["seconds"]
    saved_per_epoch = images / online - images / cached
    return {"pair": name,
            "kd_cached_over_ce_epoch_time": ce / cached,
            "kd_online_over_ce_epoch_time": ce / online,
            "cached_over_online_speed": cached / online,
            "faster_per_epoch": "cached" if cached > online else "online",
            "table_build_s": build_s,
            "table_build_in_online_kd_epochs": build_s / (images / online),
            "break_even_student_epochs": build_s / saved_per_epoch if saved_per_epoch > 0 else None}


def format_speed(result: dict) -> str:
    """The readable report of a ``run_speed`` result."""
    settings, hardware = result["settings"], result["hardware"]
    cuda = hardware["device_type"] == "cuda"
    start = min(m["start_memory_bytes"] for m in result["measurements"]) / MIB
    memory = ("CUDA max_memory_allocated" if cuda else
              f"peak RSS of the measuring process, about {start:.0f} MiB of it the interpreter and torch at start "
              f"(DataLoader workers not included)")
    lines = [
        f"compresslib speed benchmark on {hardware['device']} ({hardware['device_name']}), {hardware['threads']} "
        f"threads, torch {result['software']['packages']['torch']}",
        f"{settings['images']} random images, the paper's batch per pair, {settings['warmup']} warmup + "
        f"{settings['steps']} timed steps (inference: 1 pass, then as many images), {settings['workers']} "
        f"reference workers, torch.compile {'on' if settings['compile'] else 'off'} for compresslib",
        f"images/s; memory in MiB: {memory}",
        "",
        f"{'pair':<6}{'task':<11}{'model':<20}{'path':<20}{'ref img/s':>11}{'img/s':>11}{'b/a':>8}"
        f"{'ref MiB':>10}{'MiB':>9}",
    ]
    for ratio in result["ratios"]:
        lines.append(f"{ratio['pair']:<6}{ratio['task']:<11}{ratio['model']:<20}{PATH_LABELS[ratio['path']]:<20}"
                     f"{ratio['reference_images_per_s']:>11.1f}{ratio['images_per_s']:>11.1f}"
                     f"{ratio['speed_ratio']:>8.2f}{ratio['reference_peak_memory_bytes'] / MIB:>10.0f}"
                     f"{ratio['peak_memory_bytes'] / MIB:>9.0f}")
    if result["teacher_reuse"]:
        lines += ["", "teacher reuse: KD reading the teacher's views table against KD with the teacher online "
                      "(compresslib's path); epoch = the images above",
                  f"{'pair':<6}{'table build':>20}{'KD-cached/CE':>14}{'KD-online/CE':>14}{'cached/online':>15}"
                  f"{'faster':>8}{'break-even (student epochs)':>30}"]
        views = {m["pair"]: m for m in result["measurements"] if m["task"] == "views"}
        for row in result["teacher_reuse"]:
            build = f"{row['table_build_s']:.1f} s ({views[row['pair']]['views_per_s']:.0f} views/s)"
            even = "never" if row["break_even_student_epochs"] is None else f"{row['break_even_student_epochs']:.0f}"
            lines.append(f"{row['pair']:<6}{build:>20}{row['kd_cached_over_ce_epoch_time']:>14.2f}"
                         f"{row['kd_online_over_ce_epoch_time']:>14.2f}{row['cached_over_online_speed']:>15.2f}"
                         f"{row['faster_per_epoch']:>8}{even:>30}")
    failed = [m for m in result["measurements"] if m["compile"].startswith("failed")]
    lines += [f"note: torch.compile failed for {m['pair']} {m['task']} {m['model']} ({PATH_LABELS[m['path']]}): "
              f"{m['compile']}" for m in failed]
    return "\n".join(lines)
