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
``esnac/<experiment>/<teacher>.png``, the best reward so far against the candidates evaluated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.catalog import DATASETS
from compresslib.experiments.base import Family, Job, Study, failures, milestone_problems, overrides, positions, \
    require_keys, summary_paths, unique_jobs
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
ESNAC_COLUMNS = ["experiment", "dataset", "teacher", "strategy", "seed", "rank", "index", "params", "ratio", "times",
                 "acc_before", "acc_after", "f_before", "f_after", "teacher_acc", "teacher_params", "best"]
ESNAC_SEARCH_COLUMNS = ["experiment", "dataset", "teacher", "strategy", "seed", "candidates", "best_reward",
                        "best_f_after", "teacher_acc", "teacher_params"]
PAIRED_METRICS = ["best_f_after", "best_reward"]  # per search: its best f(x) after full training, its best reward
ALL_TEACHERS = "all"  # the teacher of the paired rows over every teacher of an experiment
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


def esnac_tables(records: list[dict], experiments: dict):
    """summary-esnac.csv, ESNAC's stat.py table, and one row per search, for each ESNAC experiment (``{name:
    experiment}``): ``(architectures, searches)``.

    ``architectures`` has one row per fully trained architecture (the ``top_k`` best by search reward) of each
    search, columns :data:`ESNAC_COLUMNS`: ``seed`` is the search's seed; ``rank`` the architecture's place by search
    reward (ESNAC's Index, ``arch-<rank>``) and ``index`` its place in the search's evaluation order; ``ratio``
    the compression c and ``times`` 1/(1 - c); ``acc_before`` and ``f_before`` its search accuracy and reward;
    ``acc_after`` the test accuracy of its full training's saved model (``selected_test_acc``: the final epoch's,
    or the best epoch's with ``selection: best`` as ESNAC; NaN until that run finished); ``teacher_acc`` the
    reference teacher's final test accuracy (NaN while its record is missing); ``f_after = c(2 - c) * acc_after /
    teacher_acc``; ``best`` marks the architecture of the search with the highest f_after (none while no
    architecture has one). Rows follow the config: experiment, teacher, strategy, seed, then rank; a search
    that several experiments ask for appears under each. ``searches`` (:data:`ESNAC_SEARCH_COLUMNS`), in the same
    order: the candidates each search evaluated, its best search reward, the best f_after of its fully trained
    architectures (NaN while none finished), and its teacher's accuracy and parameter count.
    """
    import pandas as pd

    searches, finals, teachers = {}, {}, {}  # each record under its key, to find the one record of a key
    for record in records:
        labels = record["labels"]
        if record["kind"] == SEARCH_KIND:
            key = (labels["dataset"], labels["teacher"], record["strategy"], record["seed"])
            searches.setdefault(key, []).append(record)
        elif record["kind"] == "esnac":
            finals.setdefault(tuple(labels[key] for key in ESNAC_LABELS), []).append(record)
        elif record["kind"] == "teacher":
            teachers.setdefault((labels["dataset"], labels["teacher"]), []).append(record)
    rows, search_rows = [], []
    for name, experiment in experiments.items():
        for teacher, entry in experiment["teachers"].items():
            dataset = entry["dataset"]
            reference = _only(teachers.get((dataset, entry["reference"]), []),
                              f"reference teacher {entry['reference']!r} on {dataset!r}")
            teacher_acc = math.nan if reference is None else float(reference["metrics"]["final_test_acc"])
            for strategy in experiment["strategies"]:
                for seed in experiment["seeds"]:
                    key = (dataset, teacher, strategy, seed)
                    search = _only(searches.get(key, []),
                                   f"search of {teacher!r} on {dataset!r}, {strategy}, seed {seed}")
                    if search is None:
                        continue
                    architectures = _architectures(search, key, finals, experiment["top_k"], teacher_acc)
                    rows += [{"experiment": name, **row} for row in architectures]
                    search_rows.append({
                        "experiment": name, "dataset": dataset, "teacher": teacher, "strategy": strategy, "seed": seed,
                        "candidates": len(search["curve"]["best_reward"]),
                        "best_reward": max(search["curve"]["reward"], default=math.nan),
                        "best_f_after": max((row["f_after"] for row in architectures if row["best"]), default=math.nan),
                        "teacher_acc": teacher_acc, "teacher_params": search["teacher"]["params"],
                    })
    table = pd.DataFrame(rows, columns=ESNAC_COLUMNS).astype({"best": bool})
    return table, pd.DataFrame(search_rows, columns=ESNAC_SEARCH_COLUMNS)


def _architectures(search: dict, key: tuple, finals: dict, top_k: int, teacher_acc: float) -> list[dict]:
    """The stat.py rows (without ``experiment``) of a search's ``top_k`` architectures, by rank: each with the final
    test accuracy of its full training (the one record of ``finals[(*key, rank)]``) and ``f_after`` against
    ``teacher_acc``; the best by f_after marked."""
    import numpy as np

    dataset, teacher, strategy, seed = key
    rows = []
    for top in sorted(search["top"], key=lambda top: top["rank"]):
        if top["rank"] >= top_k:
            continue
        final = _only(finals.get((*key, top["rank"]), []),
                      f"full training of rank {top['rank']} of the {strategy} search of {teacher!r} on {dataset!r}, "
                      f"seed {seed}")
        c = float(top["compression"])
        acc_after = math.nan if final is None else float(final["metrics"]["selected_test_acc"])
        rows.append({
            "dataset": dataset, "teacher": teacher, "strategy": strategy, "seed": seed, "rank": top["rank"],
            "index": top["index"], "params": top["params"], "ratio": c, "times": float(top["times"]),
            "acc_before": float(top["val_acc"]), "acc_after": acc_after, "f_before": float(top["reward"]),
            "f_after": c * (2 - c) * acc_after / teacher_acc, "teacher_acc": teacher_acc,
            "teacher_params": search["teacher"]["params"], "best": False,
        })
    f_after = [row["f_after"] for row in rows]
    if not all(math.isnan(value) for value in f_after):
        rows[int(np.nanargmax(f_after))]["best"] = True  # a tie goes to the better search reward (lower rank)
    return rows


def _only(records: list[dict], what: str) -> dict | None:
    """The one record of ``records``, None for none; several are an error naming their run directories."""
    if len(records) > 1:
        raise ValueError(f"more than one record for the {what}: {[r['run_dir'] for r in records]}")
    return records[0] if records else None


def _markdown(table, searches, experiments: dict) -> str:
    """summary-esnac.md: per ESNAC experiment and teacher, the strategies compared, the best fully trained
    architecture of each (the row of ESNAC's README), then the stat.py table of every search."""
    from compresslib.results import decimals, markdown_document, markdown_header, markdown_row, mean_std, \
        two_decimals

    comparison_header = ["strategy", "searches", "fully trained", "best f(x) after full training",
                         "best f(x) in search", "candidates"]
    best_header = ["strategy", "seed", "Index", "Acc (%)", "#Params", "Ratio", "Times", "f(x)"]
    stat_header = ["Index", "Candidate", "#Params", "Ratio", "Times", "Acc before (%)", "Acc after (%)",
                   "f(x) before", "f(x) after"]

    def parameter_count(count: int) -> str:  # exact at any size: a searched network may have a few thousand
        return f"{int(count):,}"

    def comparison_cells(strategy: str, rows) -> list[str]:
        fewest, most = rows["candidates"].min(), rows["candidates"].max()  # the same budget: one number
        return [strategy, str(len(rows)), str(int(rows["best_f_after"].notna().sum())),
                mean_std(rows["best_f_after"], 4), mean_std(rows["best_reward"], 4),
                str(fewest) if fewest == most else f"{fewest}–{most}"]

    def best_cells(row: dict) -> list[str]:
        return [row["strategy"], str(row["seed"]), str(row["rank"]), two_decimals(100 * row["acc_after"]),
                parameter_count(row["params"]), decimals(row["ratio"], 4), f"{two_decimals(row['times'])}×",
                decimals(row["f_after"], 4)]

    def stat_cells(row: dict) -> list[str]:
        return [f"{row['rank']} ★" if row["best"] else str(row["rank"]), str(row["index"]),
                parameter_count(row["params"]), decimals(row["ratio"], 4), f"{two_decimals(row['times'])}×",
                two_decimals(100 * row["acc_before"]), two_decimals(100 * row["acc_after"]),
                decimals(row["f_before"], 4), decimals(row["f_after"], 4)]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        lines = ["", f"## {name}"]
        for teacher, entry in experiment["teachers"].items():
            heading = f"### `{teacher}` on `{entry['dataset']}`"
            mine = searches[(searches["experiment"] == name) & (searches["teacher"] == teacher)]
            if mine.empty:
                lines += ["", heading, "", "no finished runs"]
                continue
            teacher_acc = mine["teacher_acc"].iloc[0]
            accuracy = ("no finished run: f(x) after full training is —" if math.isnan(teacher_acc)
                        else f"final test accuracy {two_decimals(100 * teacher_acc)}%")
            lines += ["", heading, "",
                      f"Teacher: {parameter_count(mine['teacher_params'].iloc[0])} parameters; reference "
                      f"teacher `{entry['reference']}`: {accuracy}.",
                      "", "Strategies compared (per search its best architecture; mean ± std over searches):", "",
                      *markdown_header(comparison_header)]
            lines += [markdown_row(comparison_cells(strategy, mine[mine["strategy"] == strategy]))
                      for strategy in experiment["strategies"] if strategy in set(mine["strategy"])]
            teacher_rows = [row for row in rows if row["teacher"] == teacher]
            best = [max((row for row in teacher_rows if row["strategy"] == strategy and row["best"]),
                        key=lambda row: row["f_after"], default=None) for strategy in experiment["strategies"]]
            if any(best):
                lines += ["", "Best fully trained architecture of each strategy over its searches:", "",
                          *markdown_header(best_header),
                          *(markdown_row(best_cells(row)) for row in best if row)]
            for strategy in experiment["strategies"]:
                for seed in experiment["seeds"]:
                    search = [row for row in teacher_rows if (row["strategy"], row["seed"]) == (strategy, seed)]
                    if not search:
                        continue
                    lines += ["", f"#### `{strategy}`, seed {seed}", "", *markdown_header(stat_header),
                              *(markdown_row(stat_cells(row)) for row in search)]
                    marked = [row for row in search if row["best"]]
                    lines += ["", f"Best: Index {marked[0]['rank']} (candidate {marked[0]['index']}), f(x) after full "
                                  f"training {decimals(marked[0]['f_after'], 4)}." if marked
                              else "Best: — (no architecture fully trained yet)."]
        return lines

    return markdown_document(
        "# ESNAC: compressed architectures found by search, before and after full training",
        "Ratio is ESNAC's c = 1 − #params / teacher #params (the share of the teacher's parameters removed) and "
        "Times = 1 / (1 − c) (teacher ÷ student params, as in summary-lit); f(x) = c(2 − c) · "
        "acc / teacher acc. Before: the search's accuracy and reward on its held-out split. After: the final test "
        "accuracy of the architecture's full training, against the reference teacher's final test accuracy. Index "
        "is the architecture's rank by search reward (arch-<Index>), Candidate its place in the search's "
        "evaluation order; ★ marks the best architecture of a search by f(x) after full training. "
        "std is the sample standard deviation (ddof=1); — where nothing finished.",
        table, experiments, section)


def esnac_paired(searches, experiments: dict):
    """paired-esnac.csv: ESNAC's searches against random search, from :func:`esnac_tables`' searches. Two searches
    of a teacher with one seed share the held-out split, every step's training batches and the random streams
    their proposals draw from (their architectures differ, so no initial weights are shared), so they pair by
    search seed: per experiment and teacher, then, where an experiment has several teachers, over all of them
    paired by teacher and seed (teacher ``all``)."""
    import pandas as pd

    from compresslib import paired

    by = ["experiment", "dataset", "teacher"]
    per_teacher = paired.paired_table(searches, by, "strategy", "random", PAIRED_METRICS, unit="f(x)")
    pooled = paired.paired_table(searches, by[:2], "strategy", "random", PAIRED_METRICS, pair_on=["teacher", "seed"],
                                 unit="f(x)").assign(teacher=ALL_TEACHERS)
    pooled = pooled.loc[[len(experiments[name]["teachers"]) > 1 for name in pooled["experiment"]]]
    table = pd.concat([per_teacher, pooled[per_teacher.columns]], ignore_index=True)
    return table.sort_values("experiment", key=lambda names: names.map(positions(experiments)),
                             kind="stable").reset_index(drop=True)


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "esnac"), *summary_paths(out_dir, "esnac", "paired")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import paired
    from compresslib.results import write_summary

    summary_csv, summary_markdown, paired_csv, paired_markdown = table_paths(out_dir)
    architectures, searches = esnac_tables(records, experiments)
    write_summary(architectures, _markdown(architectures, searches, experiments), summary_csv, summary_markdown)
    comparisons = esnac_paired(searches, experiments)
    write_summary(comparisons, paired.paired_markdown(
        "# ESNAC against random search, paired by search seed", "searches of a teacher with the same seed; "
        "f(x) = c(2 − c) · acc / teacher acc, of the best architecture after full training (best_f_after) and in the "
        "search (best_reward); teacher all: every teacher's searches, paired by teacher and seed", comparisons,
        experiments, lambda name, e: f"## {name}", {"teacher": "teacher"}, places=4),
        paired_csv, paired_markdown)


def _plot_paths(name: str, experiment: dict, out_dir: Path) -> dict[str, Path]:
    """The search-progress plot of each teacher of an ESNAC experiment, by teacher."""
    return {teacher: Path(out_dir) / "esnac" / name / f"{teacher}.png" for teacher in experiment["teachers"]}


def plot_paths(experiments: dict, out_dir: Path) -> list[Path]:
    return [path for name, e in experiments.items() for path in _plot_paths(name, e, out_dir).values()]


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    """Per experiment and teacher, the best search reward so far (``curve.best_reward``) of each strategy's searches
    against the candidates evaluated."""
    from compresslib import plots  # matplotlib: only aggregation needs it

    for name, experiment in experiments.items():
        searches = [r for r in records if r["kind"] == SEARCH_KIND and in_experiment(r, experiment)]
        for teacher, path in _plot_paths(name, experiment, out_dir).items():
            groups = {strategy: [r["curve"]["best_reward"] for r in searches
                                 if (r["labels"]["teacher"], r["strategy"]) == (teacher, strategy)]
                      for strategy in experiment["strategies"]}
            dataset = experiment["teachers"][teacher]["dataset"]
            plots.plot_running_best(groups, path, f"{name}: ESNAC search of {teacher} on {dataset}",
                                    "candidates evaluated", "best reward so far, f(x)")


def wildcards(config: dict) -> dict[str, str]:
    return {"strategy": "|".join(STRATEGIES), "rank": r"\d+"}


FAMILY = Family(name="esnac", check=check, jobs=jobs, wildcards=wildcards, check_jobs=check_jobs,
                record_lists=(EsnacCollect,), record_kinds=("esnac", SEARCH_KIND), unlisted_kinds=(SEARCH_KIND,),
                check_record=check_record, experiments=experiments, table_paths=table_paths,
                write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
