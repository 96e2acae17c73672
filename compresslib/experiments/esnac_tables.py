"""The ESNAC family's tables and plots, from its records: ``summary-esnac.{csv,md}`` (ESNAC's ``stat.py`` table and
the strategies compared), ``paired-esnac.{csv,md}`` (ESNAC against random search, paired by search seed) and
``esnac/<experiment>/<teacher>.png`` (the best reward so far against the candidates evaluated).

Only aggregation imports this module (through :mod:`compresslib.experiments.esnac`'s ``write_tables`` and
``write_plots``), so it may import pandas, scipy and matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from compresslib import paired, plots
from compresslib.experiments.base import positions
from compresslib.experiments.esnac import ESNAC_LABELS, SEARCH_KIND, _plot_paths, in_experiment, table_paths
from compresslib.results import decimals, markdown_document, markdown_header, markdown_row, mean_std, two_decimals, \
    write_summary

ESNAC_COLUMNS = ["experiment", "dataset", "teacher", "strategy", "seed", "rank", "index", "params", "ratio", "times",
                 "acc_before", "acc_after", "f_before", "f_after", "teacher_acc", "teacher_params", "best"]
ESNAC_SEARCH_COLUMNS = ["experiment", "dataset", "teacher", "strategy", "seed", "candidates", "best_reward",
                        "best_f_after", "teacher_acc", "teacher_params"]
PAIRED_METRICS = ["best_f_after", "best_reward"]  # per search: its best f(x) after full training, its best reward
ALL_TEACHERS = "all"  # the teacher of the paired rows over every teacher of an experiment
REWARD_IN_WORDS = "reward f = c(2 − c) · accuracy ÷ teacher's, c = 1 − parameters ÷ teacher's"  # under plot titles


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
    by = ["experiment", "dataset", "teacher"]
    per_teacher = paired.paired_table(searches, by, "strategy", "random", PAIRED_METRICS, unit="f(x)")
    pooled = paired.paired_table(searches, by[:2], "strategy", "random", PAIRED_METRICS, pair_on=["teacher", "seed"],
                                 unit="f(x)").assign(teacher=ALL_TEACHERS)
    pooled = pooled.loc[[len(experiments[name]["teachers"]) > 1 for name in pooled["experiment"]]]
    table = pd.concat([per_teacher, pooled[per_teacher.columns]], ignore_index=True)
    return table.sort_values("experiment", key=lambda names: names.map(positions(experiments)),
                             kind="stable").reset_index(drop=True)


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    summary_csv, summary_markdown, *paired_paths = table_paths(out_dir)
    architectures, searches = esnac_tables(records, experiments)
    write_summary(architectures, _markdown(architectures, searches, experiments), summary_csv, summary_markdown)
    comparisons = esnac_paired(searches, experiments)
    paired.write_paired(
        comparisons, experiments, paired_paths, "# ESNAC against random search, paired by search seed",
        "searches of a teacher with the same seed; f(x) = c(2 − c) · acc / teacher acc, of the best architecture "
        "after full training (best_f_after) and in the search (best_reward); teacher all: every teacher's searches, "
        "paired by teacher and seed", lambda name, e: f"## {name}", {"teacher": "teacher"}, places=4)


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    """Per experiment and teacher, the best search reward so far (``curve.best_reward``) of each strategy's searches
    against the candidates evaluated."""
    for name, experiment in experiments.items():
        searches = [r for r in records if r["kind"] == SEARCH_KIND and in_experiment(r, experiment)]
        for teacher, path in _plot_paths(name, experiment, out_dir).items():
            groups = {strategy: [r["curve"]["best_reward"] for r in searches
                                 if (r["labels"]["teacher"], r["strategy"]) == (teacher, strategy)]
                      for strategy in experiment["strategies"]}
            dataset = experiment["teachers"][teacher]["dataset"]
            plots.plot_running_best(groups, path, f"{name}: ESNAC search of {teacher} on {dataset}\n{REWARD_IN_WORDS}",
                                    "candidates evaluated", "best reward so far, f", "search strategy")
