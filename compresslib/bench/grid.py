"""Rows e and g of the GPU check: the LMA CIFAR-10 grid as config.yaml plans it, and its cost by plan_cost.

The grid is config.yaml's distillation experiment ``lma-cifar10`` (3 students x 5 activations x 5 seeds, 200 epochs
each). Each student x activation is one cost group of plan_cost; the GPU check measures its training and evaluation
speed (row e) and plan_cost's own arithmetic turns those rates, the compile start-up and the measured concurrency
speed-up into the grid's job-hours and GPU-hours (row g).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compresslib import experiments, plan_cost
from compresslib.activation_tags import canonical_tag
from compresslib.bench.pairs import Pair
from compresslib.catalog import get_dataset_info
from compresslib.experiments.distill import DistillStudent
from compresslib.experiments.teachers import teacher_job
from compresslib.specs.training import build_spec

__all__ = ["GRID", "CONFIG", "GridCell", "load_grid", "grid_estimate"]

GRID = "lma-cifar10"
CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


@dataclass(frozen=True)
class GridCell:
    """One student x activation of the grid: the pair its KD runs (the recipe's batch and optimiser), whether it
    reads the teacher's table, and its jobs (one per seed) by name."""

    student: str  # the config's student entry
    activation: str  # canonical tag
    pair: Pair
    cached: bool  # teacher_outputs: the teacher's views table, not the teacher online
    jobs: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.student} {self.activation}"


def load_grid(experiment: str = GRID, config: Path = CONFIG) -> tuple[experiments.Study, list[GridCell]]:
    """The study of ``config`` and the cells of its distillation ``experiment``, in the config's order."""
    study = experiments.load_config(config, plan_cost.SCHEMA)
    entry = study.config["distill"][experiment]
    teacher = teacher_job(study.config, entry["teacher"])
    cells = []
    for student in entry["students"]:
        for activation in map(canonical_tag, entry["activations"]):
            jobs = [DistillStudent(teacher.dataset, teacher.teacher, student, activation, seed)
                    for seed in entry["seeds"]]
            spec = build_spec(jobs[0].spec_values(study))
            pair = Pair(study.config["teachers"][teacher.teacher]["model"], spec.model, spec.dataset,
                        batch_size=spec.batch_size, lr=spec.lr, weight_decay=spec.weight_decay,
                        student_kwargs=spec.model_kwargs | {"activation": spec.activation})
            cells.append(GridCell(student, activation, pair, spec.teacher_outputs == "cached",
                                  tuple(job.name() for job in jobs)))
    return study, cells


def grid_estimate(study: experiments.Study, cells: list[GridCell], figures: dict[str, dict],
                  concurrency_speedup: float) -> dict:
    """plan_cost's estimate of the grid's jobs from each cell's measured figures (``figures[cell.label]``:
    ``train_images_per_s``, ``eval_images_per_s``, ``compile_s``). Returns the jobs, epochs and the total's
    job-hours and GPU-hours."""
    the_plan = plan_cost.plan(study)
    cell_of = {name: cell for cell in cells for name in cell.jobs}
    jobs = [job for job in the_plan.jobs if job.rule == DistillStudent.RULE and job.name in cell_of]
    rates = {}
    for job in jobs:
        measured = figures[cell_of[job.name].label]
        group = next(group for group, _ in job.units)
        rates[group] = {"train": 1 / measured["train_images_per_s"], "eval": 1 / measured["eval_images_per_s"],
                        "startup": measured["compile_s"]}
    total = plan_cost.estimate(plan_cost.Plan(jobs, list(rates)), rates, concurrency_speedup)[-1]
    train_images = get_dataset_info(cells[0].pair.dataset).split_sizes[0]
    epochs = sum(count for job in jobs for (_, unit), count in job.units.items() if unit == "train") / train_images
    return {"jobs": len(jobs), "epochs": epochs, "job_hours": total["job_hours"], "gpu_hours": total["gpu_hours"],
            "concurrency_speedup": concurrency_speedup}
