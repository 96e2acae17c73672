"""ESNAC (config ``esnac``): Bayesian-optimisation search over compressed architectures of a teacher with a
learned embedding kernel, beside random search at the same budget, then full training of the best found.

Jobs: ``esnac_search`` per experiment, teacher, strategy (esnac, random) and seed, a Snakemake checkpoint: once a
search has written ``top/arch-<rank>.pt``, one ``esnac_full_train`` per architecture it kept joins the DAG, and
``esnac_collect`` lists the search's and their records (``records.json``) for aggregation. A search scores
candidates on the training images its teacher held out (the teacher's own validation settings). Two experiments
may share a search only with the same settings.

Tables: ``summary-esnac.{csv,md}``, ESNAC's ``stat.py`` table (every fully trained architecture before and after
full training, against a reference teacher's record) and the strategies compared, and ``paired-esnac.{csv,md}``
(ESNAC against random search, paired by search seed); plots:
``esnac/<experiment>/<teacher>.png``, the best reward so far against the candidates evaluated; both drawn by
:mod:`compresslib.experiments.esnac_tables`, which only aggregation imports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.catalog import DATASETS
from compresslib.experiments.base import Family, Job, Study, failures, milestone_problems, overrides, \
    report_labels, require_keys, summary_paths, unique_jobs
from compresslib.experiments.datasets import dataset_file
from compresslib.experiments.teachers import RUN_OUTPUTS, check_training_record, teacher_job, teacher_validation
from compresslib.runs.record import RECORD_NAME
from compresslib.settings import build_settings
from compresslib.specs.esnac import SEARCH_TABLE, STRATEGIES, TOP_DIR, SearchSpec, arch_file
from compresslib.specs.training import ESNAC_MODEL, TrainSpec, build_spec

__all__ = ["EsnacSearch", "EsnacFullTrain", "EsnacCollect", "FAMILY"]

SEARCH_KIND = "esnac_search"  # a search's record: no training metrics; its full trainings are records of kind esnac
SEARCH_REQUIRED_KEYS = ("spec", "strategy", "teacher", "top", "curve")
SEARCH_LABELS = ("dataset", "teacher", "strategy")
SEARCH_TEACHER_KEYS = ("params", "val_acc")
SEARCH_TOP_KEYS = ("rank", "index", "params", "compression", "times", "val_acc", "reward")
SEARCH_CURVE_KEYS = ("index", "reward", "best_reward")
ESNAC_LABELS = ("dataset", "teacher", "strategy", "search_seed", "rank")
SEARCH_FOLDER = "results/esnac/{dataset}/{teacher}/{strategy}/seed{seed}"
SEARCH_LOG = "{dataset}/{teacher}/{strategy}/seed{seed}"


@dataclass(frozen=True)
class EsnacSearch(Job):
    RULE = "esnac_search"
    FOLDER = SEARCH_FOLDER
    OUTPUTS = {"record": RECORD_NAME, "table": SEARCH_TABLE, "top": TOP_DIR}
    LOG = SEARCH_LOG
    WHAT = "a search of any esnac experiment"

    dataset: str
    teacher: str
    strategy: str  # esnac | random
    seed: int
    experiment: str = field(default="", compare=False)

    def settings(self, study: Study) -> dict:
        experiment = study.config["esnac"][self.experiment]
        return {"search": experiment["search"], "full_train": experiment["full_train"]}

    def spec_values(self, study: Study) -> dict:
        """The SearchSpec values: the experiment's ``search`` settings, the held-out split the teacher did not
        train on (its own validation settings), and labels for the result tables."""
        validation = teacher_validation(study.config, self.teacher)
        return {**self.settings(study)["search"], "dataset": self.dataset, "strategy": self.strategy,
                "seed": self.seed, "holdout_size": validation["holdout_size"],
                "holdout_split": validation["holdout_split"], "holdout_seed": validation["holdout_seed"],
                "labels": {"dataset": self.dataset, "teacher": self.teacher, "strategy": self.strategy}}

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset), "teacher": teacher_job(study.config, self.teacher).model_file()}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), SearchSpec)


@dataclass(frozen=True)
class EsnacFullTrain(Job):
    RULE = "esnac_full_train"
    FOLDER = SEARCH_FOLDER + "/final-{rank}"
    OUTPUTS = RUN_OUTPUTS
    LOG = SEARCH_LOG + "/final-{rank}"
    WHAT, SHARES_GPU = "the full training of an architecture of any esnac search", True

    dataset: str
    teacher: str
    strategy: str
    seed: int
    rank: int
    experiment: str = field(default="", compare=False)

    def search(self) -> EsnacSearch:
        return EsnacSearch(self.dataset, self.teacher, self.strategy, self.seed, self.experiment)

    checkpoint = search  # its architecture file is in the search's top/

    def spec_values(self, study: Study) -> dict:
        """TrainSpec values of the full training (the model, its architecture and the input normalisation come
        from the architecture file itself)."""
        return {**self.search().settings(study)["full_train"], "kind": "esnac", "dataset": self.dataset,
                "seed": self.seed, "validation": "test",
                "labels": {"dataset": self.dataset, "teacher": self.teacher, "strategy": self.strategy,
                           "search_seed": self.seed, "rank": self.rank}}

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset),
                "arch": f"{self.search().outputs()['top']}/{arch_file(self.rank)}"}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), TrainSpec)


@dataclass(frozen=True)
class EsnacCollect(Job):
    RULE = "esnac_collect"
    FOLDER = SEARCH_FOLDER
    OUTPUTS = {"records": "records.json"}  # the search's and its full trainings' record paths
    LOG = SEARCH_LOG
    WHAT = "a search of any esnac experiment"

    dataset: str
    teacher: str
    strategy: str
    seed: int


def check(config: dict) -> list[str]:
    problems = []
    teachers = config.get("teachers", {})
    for name, experiment in config.get("esnac", {}).items():
        where = f"esnac.{name}"
        for index, teacher in enumerate(experiment["teachers"]):
            entry = teachers.get(teacher)
            if entry is None:
                problems.append(f"{where}.teachers[{index}]: {teacher!r} names no teacher; "
                                f"allowed: {', '.join(teachers) or '(no teachers defined)'}")
            elif entry["dataset"] in DATASETS and DATASETS[entry["dataset"]].kind != "image":
                problems.append(f"{where}.teachers[{index}]: ESNAC compresses image classifiers; {teacher!r} is "
                                f"trained on {entry['dataset']}")
            elif teacher_validation(config, teacher)["policy"] != "holdout":
                problems.append(f"{where}.teachers[{index}]: teacher {teacher!r} trains on the whole training set "
                                "(validation policy test), but the search scores candidates on images the teacher has "
                                "not seen; give it validation: {policy: holdout, holdout_split: last} (ESNAC's 45K/5K)")
        search = experiment["search"]
        if search["top_k"] > (budget := search["steps"] * search["candidates_per_step"]):
            problems.append(f"{where}.search.top_k: {search['top_k']} is more than the {budget} candidates the search "
                            f"evaluates (steps x candidates_per_step); allowed: 1 to {budget}")
        problems += milestone_problems(f"{where}.full_train", experiment["full_train"])
        for searched, reference in experiment["reference_teachers"].items():
            if searched not in experiment["teachers"]:
                problems.append(f"{where}.reference_teachers: {searched!r} is not one of the experiment's teachers")
            elif reference not in teachers:
                problems.append(f"{where}.reference_teachers.{searched}: {reference!r} names no teacher")
            elif searched in teachers and teachers[reference]["dataset"] != teachers[searched]["dataset"]:
                problems.append(f"{where}.reference_teachers.{searched}: {reference!r} is trained on "
                                f"{teachers[reference]['dataset']}, {searched!r} on {teachers[searched]['dataset']}")
    return problems


def jobs(study: Study) -> list[Job]:
    """Every search once (in config order), the full training of each architecture it keeps, its collection."""
    config = study.config
    asked = (EsnacSearch(config["teachers"][teacher]["dataset"], teacher, strategy, seed, name)
             for name, e in config.get("esnac", {}).items()
             for teacher, strategy, seed in itertools.product(e["teachers"], e["strategies"], e["seeds"]))
    searches = unique_jobs(((job, job.settings(study)) for job in asked), lambda first, second: (
        f"esnac.{first.experiment} and esnac.{second.experiment} both search {first.teacher} ({first.strategy}, "
        f"seed {first.seed}) with different search or full_train settings; give one of them other seeds"))
    finals = [EsnacFullTrain(s.dataset, s.teacher, s.strategy, s.seed, rank, s.experiment) for s in searches
              for rank in range(config["esnac"][s.experiment]["search"]["top_k"])]
    return [*searches, *finals, *(EsnacCollect(s.dataset, s.teacher, s.strategy, s.seed) for s in searches)]


def check_jobs(study: Study) -> list[str]:
    searches = study.of_type(EsnacSearch)
    where = {job: f"esnac.{job.experiment} ({job.teacher}, {job.strategy})" for job in searches}
    problems = failures(lambda job: build_settings(SearchSpec, job.spec_values(study)),
                        [(where[job], job) for job in searches])
    finals = {job.experiment: job for job in study.of_type(EsnacFullTrain) if job.rank == 0}
    return problems + failures(build_spec, [(f"esnac.{name}.full_train", job.spec_values(study) | {
        "model": ESNAC_MODEL}) for name, job in finals.items()])


def check_record(record: dict, path: Path) -> None:
    if record["kind"] == SEARCH_KIND:
        _check_search_record(record, path)
    else:
        check_training_record(record, path, ESNAC_LABELS)


def experiments(config: dict) -> dict:
    return {name: {"teachers": {teacher: {"dataset": config["teachers"][teacher]["dataset"],
                                          "reference": e["reference_teachers"].get(teacher, teacher)}
                                for teacher in e["teachers"]},
                   "strategies": list(e["strategies"]), "seeds": list(e["seeds"]), "top_k": e["search"]["top_k"]}
            for name, e in config.get("esnac", {}).items()}


def _check_search_record(record: dict, path: Path) -> None:
    """An ESNAC search record: its own keys, labels naming its strategy, a teacher, top architectures and a curve."""
    require_keys(record, SEARCH_REQUIRED_KEYS, path, f"{SEARCH_KIND} record lacks required keys")
    require_keys(record["labels"], SEARCH_LABELS, path, f"{SEARCH_KIND} record lacks labels")
    if record["labels"]["strategy"] != record["strategy"]:
        raise ValueError(f"{path}: {SEARCH_KIND} record's strategy {record['strategy']!r} disagrees with its "
                         f"label {record['labels']['strategy']!r}")
    require_keys(record["teacher"], SEARCH_TEACHER_KEYS, path, f"{SEARCH_KIND} record lacks teacher keys")
    if not isinstance(record["top"], list):
        raise ValueError(f"{path}: {SEARCH_KIND} record's top must be a list, got {type(record['top']).__name__}")
    for entry in record["top"]:
        what = f"{SEARCH_KIND} record's top architecture {entry.get('rank')!r} lacks keys"
        require_keys(entry, SEARCH_TOP_KEYS, path, what)
    require_keys(record["curve"], SEARCH_CURVE_KEYS, path, f"{SEARCH_KIND} record lacks curve keys")
    lengths = [len(record["curve"][key]) for key in SEARCH_CURVE_KEYS]
    if len(set(lengths)) != 1:
        raise ValueError(f"{path}: {SEARCH_KIND} curve has {dict(zip(SEARCH_CURVE_KEYS, lengths, strict=True))} "
                         "values; expected one of each per evaluated candidate")


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record belongs to an ESNAC experiment: one of its searches, the full training of one of their
    ``top_k`` architectures, or the reference teacher of one of its teachers.

    A search or full training matches on the teacher and its dataset, the strategy and the (search) seed.
    """
    labels = record["labels"]
    if record["kind"] == "teacher":
        return any((labels["dataset"], labels["teacher"]) == (entry["dataset"], entry["reference"])
                   for entry in experiment["teachers"].values())
    if record["kind"] == SEARCH_KIND:
        seed = record["seed"]
    elif record["kind"] == "esnac":
        seed = labels["search_seed"]
        if labels["rank"] >= experiment["top_k"]:
            return False
    else:
        return False
    entry = experiment["teachers"].get(labels["teacher"])
    return (entry is not None and labels["dataset"] == entry["dataset"]
            and labels["strategy"] in experiment["strategies"] and seed in experiment["seeds"])


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "esnac"), *summary_paths(out_dir, "esnac", "paired")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib.experiments import esnac_tables  # pandas and scipy: only aggregation needs them

    esnac_tables.write_tables(records, experiments, out_dir)


def _plot_paths(name: str, experiment: dict, out_dir: Path) -> dict[str, Path]:
    """The search-progress plot of each teacher of an ESNAC experiment, by teacher."""
    return {teacher: Path(out_dir) / "esnac" / name / f"{teacher}.png" for teacher in experiment["teachers"]}


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    return {path: report_labels(name, "best search reward by candidates evaluated",
                                dataset=e["teachers"][teacher]["dataset"], teacher=teacher, student="searched",
                                method=", ".join(e["strategies"]))
            for name, e in experiments.items() for teacher, path in _plot_paths(name, e, out_dir).items()}


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib.experiments import esnac_tables  # matplotlib: only aggregation needs it

    esnac_tables.write_plots(records, experiments, out_dir)


def wildcards(config: dict) -> dict[str, str]:
    return {"strategy": "|".join(STRATEGIES), "rank": r"\d+"}


FAMILY = Family(name="esnac", title="ESNAC", check=check, jobs=jobs, wildcards=wildcards, check_jobs=check_jobs,
                record_lists=(EsnacCollect,), record_kinds=("esnac", SEARCH_KIND), unlisted_kinds=(SEARCH_KIND,),
                check_record=check_record, experiments=experiments, table_paths=table_paths,
                write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
