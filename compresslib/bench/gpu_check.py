"""``python -m compresslib.bench gpu-check``: the figures the project needs from a GPU, one prepared run, one table.

Rows (docs/benchmarks.md, "The GPU check"):

* a. the workflow's own scripts (the demo's teacher, then a KD student; compresslib.bench.workflow_check) on the device
  at the demo's size, each job's test accuracy against the same job on the CPU;
* b. KD student throughput, eager and compiled, the teacher online and cached, against the originals' loop
  (compresslib.bench.speed's measurements) for the conv and wrn pairs;
* c. a KD epoch reading the teacher's table over a cross-entropy epoch, in the jobs' compile mode;
* d. the table's build time for CIFAR's 50,000 images, and the student epochs after which it pays for itself;
* e. seconds per CIFAR-10 epoch (50,000 training images, the 10,000 test images evaluated) of every student x
  activation of the LMA grid (compresslib.bench.grid), and its compile start-up;
* f. the aggregate throughput of N student jobs sharing the GPU (separate processes) over one alone: the slot default;
* g. the grid's job-hours and GPU-hours by plan_cost from e's rates and f's speed-up.

Measurements of b-f are prepared side by side (model builds, compilation, warmup) in worker processes while row a's
jobs run, then timed (compresslib.bench.turns): those of b-e one at a time, f's one job alone and then its N jobs,
each in a worker of its own, all at once. KD reading the table reads one of the real shape filled with zeros: a
lookup costs what it costs whatever the logits (row a and ``python -m compresslib.bench accuracy`` check what the
table holds). ``--size tiny`` runs everything at a few images and steps on CPU-sized stand-ins, so that the test
suite runs the whole command (tests/test_gpu_check.py).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compresslib import experiments
from compresslib.bench import result_header
from compresslib.bench.grid import GridCell, grid_estimate, load_grid
from compresslib.bench.pairs import PAIRS, Pair
from compresslib.bench.speed import Measurement, SpeedSettings
from compresslib.bench.turns import Task, deal, failure, run_tasks
from compresslib.bench.workflow_check import ACCURACY_TOLERANCE, run_workflow_check
from compresslib.devices import Placement
from compresslib.io import save_torch
from compresslib.training.teacher_views import view_count

__all__ = ["Size", "SIZES", "SPEED_PAIRS", "TARGETS", "GpuCheckSettings", "preparing_processes", "run_gpu_check",
           "format_gpu_check"]

SPEED_PAIRS = ("conv", "wrn")
MAX_WORKERS = 8  # processes preparing measurements side by side: 8 x ~4 GB of host memory, 8 CUDA contexts
# The issue's H100 targets: KD training of student 0 against the originals' loop, a KD epoch reading the table
# against a cross-entropy epoch, the LMA CIFAR-10 grid's GPU-hours
TARGETS = {"kd_speedup_conv": 10.0, "kd_cached_over_ce": 1.15, "grid_gpu_hours": 2.0}
CIFAR_EPOCHS = 200  # an LMA student's epochs, for the break-even in runs


@dataclass(frozen=True)
class Size:
    """How much each row runs. The full size's steps are what the speed benchmark takes on CUDA (200 timed after 30
    of warmup: compiling, cuDNN autotuning); docs/benchmarks.md reasons why it all fits 8 minutes of an H100."""

    images: int  # b, c: random images each measurement holds (the reference's warmup + steps fit one epoch)
    steps: int  # b, c, e: timed training steps per measurement (e's evaluation: as many images, whole passes)
    warmup: int  # untimed training steps first
    workers: int  # b: the reference DataLoader's worker processes (the speed benchmark's CUDA default)
    views_images: int  # d: images whose 162 views the timed table build runs the teacher on (scaled to 50,000)
    grid_images: int  # e, f: images held; e evaluates them as the test split (CIFAR-10's: 10,000)
    concurrent_steps: int  # f: timed steps of each student job
    batch_size: int | None = None  # every pair's training batch; None: the paper's
    demo_data: dict | None = None  # a: the demo dataset's sizes; None: the demo's own (4,000 / 1,000 images)
    demo_overrides: tuple[str, ...] = ()  # a: settings added to both training jobs
    standins: dict[str, Pair] = field(default_factory=dict)  # pairs replaced by smaller ones
    note: str = ""  # what the table says about the size


SIZES = {
    "full": Size(images=30_000, steps=200, warmup=30, workers=4, views_images=2_000, grid_images=10_000,
                 concurrent_steps=300),
    "tiny": Size(images=16, steps=2, warmup=1, workers=0, views_images=1, grid_images=16, concurrent_steps=2,
                 batch_size=8, demo_data={"train_size": 640, "test_size": 64}, demo_overrides=("epochs=1",),
                 standins={name: Pair("demo_conv_student0", "demo_conv_student1", PAIRS[name].dataset, batch_size=8,
                                      lr=0.05, weight_decay=0.0) for name in SPEED_PAIRS},
                 note="tiny: batch 8, 2 timed steps, 16 images, the reference loading in-process; b-d's pairs stood "
                      "in by the demo's students 0 -> 1; demo data 640/64 images, 1 epoch: the figures show that "
                      "every row runs, not speeds"),
}


@dataclass(frozen=True)
class GpuCheckSettings:
    device: str  # resolved: cpu, cuda:N
    size: str  # a key of SIZES
    compile: bool  # torch.compile where the jobs would compile (the "compiled" variants; c-g in that mode)
    slots: int  # f: student jobs sharing the GPU
    workers: int  # processes preparing measurements side by side
    seed: int = 0


def preparing_processes() -> int:
    """Processes preparing measurements side by side: two cores each (dynamo traces on one, inductor compiles on
    the rest), at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) // 2))


def run_gpu_check(settings: GpuCheckSettings, placement: Placement) -> dict:
    """Measure every row; return the result (the rows as printed, every measurement, the settings)."""
    size = SIZES[settings.size]
    cores = os.cpu_count() or 1
    seconds = {}
    with ThreadPoolExecutor(max_workers=1) as background, \
            tempfile.TemporaryDirectory(prefix="compresslib-gpu-check-") as scratch:
        tick = time.perf_counter()
        workflow = background.submit(_timed, lambda: run_workflow_check(  # row a from the start: its jobs are long
            settings.device, max(1, cores // 2), size.demo_data, size.demo_overrides))
        study, cells = load_grid()
        tables = Path(scratch) / "tables"
        in_turn = _speed_tasks(settings, size, tables, Path(scratch) / "built") + _grid_tasks(settings, size, cells,
                                                                                               tables)
        alone, shared = _concurrency_tasks(settings, size, cells[0], tables)
        groups = deal(in_turn, settings.workers)
        groups += [[] for _ in range(len(shared) - len(groups))]
        for group, job in zip(groups, shared):  # each of f's jobs in a process of its own
            group.append(job)
        groups[0].append(alone)
        _write_zero_tables(tables, in_turn + [alone])
        schedule = [[task.key] for task in in_turn] + [[alone.key], [job.key for job in shared]]
        measured, (workflow, workflow_s) = run_tasks(groups, schedule, max(1, cores // len(groups)),
                                                     while_preparing=workflow.result)
        seconds |= {"measurements": time.perf_counter() - tick, "workflow (meanwhile)": workflow_s}
    concurrency = _concurrency(measured, alone, shared)
    grid, seconds["grid estimate"] = _timed(lambda: _grid(study, cells, measured, concurrency))
    rows = (_workflow_rows(workflow) + _speed_rows(settings, size, cells, measured)
            + _grid_rows(cells, grid) + _concurrency_rows(settings, cells[0], concurrency, grid))
    return result_header("gpu-check", settings, placement) | {
        "size": dataclasses.asdict(size), "rows": rows, "measurements": measured, "workflow": workflow,
        "concurrency": concurrency, "grid": grid, "stage_seconds": seconds}


def _timed(run: Callable[[], object]) -> tuple[object, float]:
    tick = time.perf_counter()
    return run(), time.perf_counter() - tick


def _sized(pair: Pair, size: Size) -> Pair:
    return pair if size.batch_size is None else dataclasses.replace(pair, batch_size=size.batch_size)


def _mode(compiled: bool) -> str:
    return "compiled" if compiled else "eager"


def _speed_tasks(settings: GpuCheckSettings, size: Size, tables: Path, built: Path) -> list[Task]:
    """b, c, d per pair: KD along the reference, compresslib online and cached (eager, and compiled when compiling),
    cross-entropy in the jobs' mode, and the timed table build (written to ``built``, read by nothing)."""
    tasks = []
    for name in SPEED_PAIRS:
        pair = _sized(size.standins.get(name, PAIRS[name]), size)
        base = SpeedSettings(device=settings.device, pairs=(name,), tasks=("kd",), images=size.images,
                             steps=size.steps, warmup=size.warmup, workers=size.workers, compile=False,
                             seed=settings.seed)
        variants = [("kd", "reference", False), ("kd", "resident", False), ("kd", "resident_cached", False)]
        variants += [("kd", "resident", True), ("kd", "resident_cached", True)] if settings.compile else []
        for task, path, compiled in [*variants, ("ce", "resident", settings.compile)]:
            tasks.append(Task(f"{name}/{task}/{path}/{_mode(compiled)}", Measurement(name, task, path, pair.student),
                              dataclasses.replace(base, compile=compiled), pair, str(tables)))
        tasks.append(Task(f"{name}/views", Measurement(name, "views", "resident", pair.teacher),
                          dataclasses.replace(base, images=size.views_images), pair, str(built)))
    return tasks


def _grid_task(key: str, settings: GpuCheckSettings, size: Size, cell: GridCell, tables: Path, evaluation: bool = False,
               steps: int | None = None) -> Task:
    """A grid cell's KD training as its jobs run it (the teacher's table, or the teacher online), or its evaluation."""
    pair = _sized(cell.pair, size)
    path = "resident_cached" if cell.cached and not evaluation else "resident"
    return Task(key, Measurement("grid", "inference" if evaluation else "kd", path, pair.student),
                SpeedSettings(device=settings.device, pairs=("grid",), tasks=("kd",), images=size.grid_images,
                              steps=steps or size.steps, warmup=size.warmup, workers=0, compile=settings.compile,
                              seed=settings.seed), pair, str(tables))


def _grid_tasks(settings: GpuCheckSettings, size: Size, cells: list[GridCell], tables: Path) -> list[Task]:
    """e: each cell's training and evaluation."""
    return [_grid_task(f"grid/{cell.label}/{part}", settings, size, cell, tables, evaluation=part == "eval")
            for cell in cells for part in ("train", "eval")]


def _write_zero_tables(folder: Path, tasks: list[Task]) -> None:
    """The views table each cached KD measurement reads (``<pair>-views.pt``): zeros of the real shape."""
    folder.mkdir()
    for task in tasks:
        path = folder / f"{task.measurement.pair}-views.pt"
        if task.measurement.path == "resident_cached" and not path.exists():
            save_torch(path, torch.zeros(task.settings.images, view_count(), task.pair.info.num_classes,
                                         dtype=torch.bfloat16))


def _concurrency_tasks(settings: GpuCheckSettings, size: Size, cell: GridCell, tables: Path
                       ) -> tuple[Task, list[Task]]:
    """f: the first grid cell's training, once to run alone and ``settings.slots`` times to run at once."""
    alone = _grid_task("concurrency/alone", settings, size, cell, tables, steps=size.concurrent_steps)
    return alone, [dataclasses.replace(alone, key=f"concurrency/job{index}") for index in range(settings.slots)]


def _concurrency(measured: dict[str, dict], alone: Task, shared: list[Task]) -> dict:
    """f's figures: one job's images/s, all jobs' together over the span from the first start to the last end."""
    results = [measured[task.key] for task in (alone, *shared)]
    errors = [result["error"] for result in results if "error" in result]
    if errors:
        return failure(errors[0])
    one, together = results[0], results[1:]
    aggregate = sum(r["images"] for r in together) / (max(r["ended"] for r in together) -
                                                      min(r["started"] for r in together))
    return {"jobs": len(shared), "alone_images_per_s": one["images_per_s"], "together_images_per_s": aggregate,
            "speedup": aggregate / one["images_per_s"], "compile": one["compile"]}


def _cell_figures(measured: dict[str, dict], cell: GridCell) -> dict:
    """A grid cell's rates and compile start-up (what its untimed warmups took beyond their share of steady speed)."""
    train, evaluate = measured[f"grid/{cell.label}/train"], measured[f"grid/{cell.label}/eval"]
    for result in (train, evaluate):
        if "error" in result:
            return result
    compiled = train["compile"].startswith("on")
    startup = sum(r["warmup_seconds"] - r["warmup_images"] / r["images_per_s"] for r in (train, evaluate))
    train_images, test_images = cell.pair.info.split_sizes
    return {"train_images_per_s": train["images_per_s"], "eval_images_per_s": evaluate["images_per_s"],
            "train_s": train_images / train["images_per_s"], "eval_s": test_images / evaluate["images_per_s"],
            "compile_s": max(0.0, startup) if compiled else 0.0, "compile": train["compile"]}


def _grid(study: experiments.Study, cells: list[GridCell], measured: dict[str, dict], concurrency: dict) -> dict:
    """e's figures per cell, and g's estimate from them at f's speed-up (1.0, no gain, where f failed)."""
    figures = {cell.label: _cell_figures(measured, cell) for cell in cells}
    errors = [f"{label}: {f['error']}" for label, f in figures.items() if "error" in f]
    estimate = failure(errors[0]) if errors else grid_estimate(study, cells, figures, concurrency.get("speedup", 1.0))
    return {"cells": figures, "estimate": estimate}


# ---- the rows ---------------------------------------------------------------------------------------------------

def _row(row: str, item: str, figure: str, against: str = "", target: str = "", verdict: str = "",
         **values: float | str | None) -> dict:
    return {"row": row, "item": item, "figure": figure, "against": against, "target": target, "verdict": verdict,
            "values": values}


def _failed(row: str, item: str, error: str) -> dict:
    return _row(row, item, "failed", error, verdict="FAILED")


def _meets(value: float, limit: float, at_least: bool) -> str:
    return "ok" if (value >= limit if at_least else value <= limit) else "MISSED"


def _workflow_rows(workflow: dict) -> list[dict]:
    rows = []
    for job in workflow["jobs"]:
        item = f"{job['role']} {job['name']}"
        device, cpu = job["device"], job.get("cpu", job["device"])  # on the CPU, a job is its own CPU figure
        if not device["ok"]:
            rows.append(_failed("a", item, device["error"]))
            continue
        compiled = ", ".join((device.get("compile") or {}).get("used", ["not recorded"]))
        figure = (f"acc {device['test_acc']:.3f}" if "test_acc" in device else "built") + f", {device['seconds']:.0f} s"
        if "test_acc" not in device:
            rows.append(_row("a", item, figure, seconds=device["seconds"], verdict="ok"))
        elif not cpu["ok"]:
            rows.append(_row("a", item, figure, f"cpu failed: {cpu['error']}", verdict="FAILED"))
        else:
            tolerance, delta = ACCURACY_TOLERANCE[job["role"]], device["test_acc"] - cpu["test_acc"]
            rows.append(_row("a", item, figure, f"cpu acc {cpu['test_acc']:.3f}: {delta:+.3f}; compile {compiled}",
                             f">= -{tolerance:.2f}", "ok" if delta >= -tolerance else "FAILED",
                             test_acc=device["test_acc"], cpu_test_acc=cpu["test_acc"], seconds=device["seconds"]))
    return rows


def _speed_rows(settings: GpuCheckSettings, size: Size, cells: list[GridCell], measured: dict[str, dict]
                ) -> list[dict]:
    """b, c and d for each pair."""
    jobs_path = "resident_cached" if cells[0].cached else "resident"  # how the grid's students get the logits
    mode = _mode(settings.compile)
    rows = []
    for name in SPEED_PAIRS:
        pair = _sized(size.standins.get(name, PAIRS[name]), size)
        reference = measured[f"{name}/kd/reference/eager"]
        for path, compiled in [("resident", False), ("resident_cached", False),
                               *([("resident", True), ("resident_cached", True)] if settings.compile else [])]:
            ours = measured[f"{name}/kd/{path}/{_mode(compiled)}"]
            source = "cached" if path == "resident_cached" else "online"
            item = f"{name} KD {pair.student}, teacher {source}, {_mode(compiled)}"
            if "error" in ours or "error" in reference:
                rows.append(_failed("b", item, ours.get("error") or f"reference: {reference['error']}"))
                continue
            speedup = ours["images_per_s"] / reference["images_per_s"]
            target = name == "conv" and path == jobs_path and compiled == settings.compile
            rows.append(_row("b", item, f"{ours['images_per_s']:,.0f} img/s",
                             f"reference {reference['images_per_s']:,.0f} img/s: {speedup:.2f}x",
                             f">= {TARGETS['kd_speedup_conv']:g}x" if target else "",
                             _meets(speedup, TARGETS["kd_speedup_conv"], True) if target else "",
                             images_per_s=ours["images_per_s"], reference_images_per_s=reference["images_per_s"],
                             speedup=speedup, compile=ours["compile"]))
        rows += _reuse_rows(name, pair, size, mode, measured)
    return sorted(rows, key=lambda row: row["row"])  # b, then c, then d


def _reuse_rows(name: str, pair: Pair, size: Size, mode: str, measured: dict[str, dict]) -> list[dict]:
    """c and d for one pair, in the jobs' compile mode."""
    ce, online = measured[f"{name}/ce/resident/{mode}"], measured[f"{name}/kd/resident/{mode}"]
    cached, views = measured[f"{name}/kd/resident_cached/{mode}"], measured[f"{name}/views"]
    errors = [result["error"] for result in (ce, online, cached, views) if "error" in result]
    if errors:
        return [_failed("c", f"{name} KD-cached / CE epoch time, {mode}", errors[0]),
                _failed("d", f"{name} views table and break-even", errors[0])]
    ratio = ce["images_per_s"] / cached["images_per_s"]
    images = pair.info.split_sizes[0]
    build_s = views["seconds"] * images / size.views_images
    saved = images / online["images_per_s"] - images / cached["images_per_s"]  # per student epoch
    even = build_s / saved if saved > 0 else None
    return [
        _row("c", f"{name} KD-cached / CE epoch time, {mode}", f"{ratio:.2f}",
             f"CE {ce['images_per_s']:,.0f}, KD cached {cached['images_per_s']:,.0f} img/s",
             f"<= {TARGETS['kd_cached_over_ce']:g}", _meets(ratio, TARGETS["kd_cached_over_ce"], False),
             kd_cached_over_ce=ratio),
        _row("d", f"{name} table build: {pair.teacher}, {images:,} images", f"{build_s:,.1f} s",
             f"{views['views_per_s']:,.0f} views/s (timed on {size.views_images:,} images)",
             table_build_s=build_s, views_per_s=views["views_per_s"]),
        _row("d", f"{name} KD cached / online speed, {mode}", f"{cached['images_per_s'] / online['images_per_s']:.2f}x",
             "never pays: online is faster" if even is None else
             f"break-even after {even:,.0f} student epochs ({even / CIFAR_EPOCHS:.2f} runs of {CIFAR_EPOCHS})",
             cached_over_online=cached["images_per_s"] / online["images_per_s"], break_even_epochs=even),
    ]


def _grid_rows(cells: list[GridCell], grid: dict) -> list[dict]:
    rows = []
    for cell in cells:
        figures, item = grid["cells"][cell.label], f"{cell.label} epoch ({cell.pair.student})"
        if "error" in figures:
            rows.append(_failed("e", item, figures["error"]))
            continue
        rows.append(_row("e", item, f"{figures['train_s'] + figures['eval_s']:.2f} s/epoch",
                         f"train {figures['train_s']:.2f} s ({figures['train_images_per_s']:,.0f} img/s), eval "
                         f"{figures['eval_s']:.2f} s; compile {figures['compile_s']:.0f} s",
                         epoch_s=figures["train_s"] + figures["eval_s"], **figures))
    return rows


def _concurrency_rows(settings: GpuCheckSettings, cell: GridCell, concurrency: dict, grid: dict) -> list[dict]:
    """f, and g (at f's speed-up)."""
    item = f"{settings.slots} concurrent {cell.label} KD jobs / 1 alone"
    if "error" in concurrency:
        rows, sharing = [_failed("f", item, concurrency["error"])], "f failed: no gain assumed"
    else:
        rows = [_row("f", item, f"{concurrency['speedup']:.2f}x", f"1 job {concurrency['alone_images_per_s']:,.0f}, "
                     f"{settings.slots} jobs {concurrency['together_images_per_s']:,.0f} img/s",
                     speedup=concurrency["speedup"])]
        sharing = f"{settings.slots} per GPU at {concurrency['speedup']:.2f}x"
    estimate = grid["estimate"]
    if "error" in estimate:
        return rows + [_failed("g", "LMA grid (plan_cost)", estimate["error"])]
    item = f"LMA grid: {estimate['jobs']} students x {estimate['epochs'] / estimate['jobs']:.0f} epochs (plan_cost)"
    target = TARGETS["grid_gpu_hours"]
    return rows + [_row("g", item, f"{estimate['gpu_hours']:,.2f} GPU-h",
                        f"{estimate['job_hours']:,.2f} job-h; {sharing}", f"<= {target:g} GPU-h",
                        _meets(estimate["gpu_hours"], target, False), **estimate)]


def format_gpu_check(result: dict) -> str:
    """The check's one table, with what it ran on above and what each stage took below."""
    settings, hardware, software = result["settings"], result["hardware"], result["software"]
    lines = [f"compresslib GPU check ({settings['size']}) on {hardware['device']} ({hardware['device_name']}), torch "
             f"{software['packages']['torch']}, CUDA {hardware.get('cuda') or 'none'}, compile "
             f"{'on' if settings['compile'] else 'off'}; measurements prepared in {settings['workers']} "
             "process(es) side by side, timed alone"]
    if result["size"]["note"]:
        lines.append(result["size"]["note"])
    widths = (4, 52, 18, 62, 13)
    lines.append("".join(f"{name:<{width}}" for name, width in zip(("row", "item", "figure", "against", "target"),
                                                                   widths)) + "verdict")
    for row in result["rows"]:
        cells = (row["row"], row["item"], row["figure"], row["against"], row["target"])
        lines.append("".join(f"{cell:<{width - 1}} " for cell, width in zip(cells, widths)) + row["verdict"])
    lines.append("stages: " + "; ".join(f"{stage} {seconds:.0f} s" for stage, seconds in
                                        result["stage_seconds"].items()))
    return "\n".join(lines)
