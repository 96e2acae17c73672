"""Rebuild results/tables/*.csv and results/plots/*.png from record.json files (the aggregate rule).

    python workflow_scripts/aggregate.py --tables results/tables --plots results/plots \
        --experiments '{"distill": {"lma-cifar10": {...}}, "quantize": {"qd-cifar10": {...}}, "lit": {...},
                        "esnac": {...}, "translation": {...}}' \
        results/**/record.json

--experiments holds config.yaml's experiments by family (compresslib.experiments.aggregation_experiments); any family
may be absent. A distill experiment has
"teacher", "students", "activations" and "seeds"; a quantize experiment has those plus "methods" (of qd,
dq, pm), "bits", "buckets" (null: one bucket per tensor) and "references" (of "distilled", "undistilled":
the full-precision students shown beside the quantized ones). A LIT experiment has "dataset", "teacher",
"student", "activation", "seeds" and "baselines" (of "scratch", "kd": the undistilled and the distilled
student of the same pair, shown beside the LIT runs). An ESNAC experiment has "teachers" ({teacher: {"dataset",
"reference"}}: the teacher whose final test accuracy f(x) after full training is measured against, possibly the
searched teacher itself), "strategies" (of "esnac", "random"), "seeds" and "top_k" (the architectures of each search
that were fully trained). A translation experiment has "corpus", "teacher", "students", "activations" ({student:
[FFN activation tags]}, "none" for an LSTM student), "methods" (of undistilled, word-kd, seq-kd, qd), "bits" and
"buckets" (of its qd students; null: one bucket per tensor) and "seeds"; its teacher's record is shown first.

The records are those of training runs (translation runs included: kind translation) and of ESNAC searches (kind
esnac_search); runs.csv lists the training runs.
--record-lists names JSON files ``{"records": [paths]}`` (rules/esnac.smk writes one per search, listing the
search's record and those of its fully trained architectures, whose number is known only after the search).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from compresslib.cli import run_main
from compresslib.experiments import load_records, write_plots, write_tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", required=True, type=Path, help="output directory of the CSV tables")
    parser.add_argument("--plots", required=True, type=Path, help="output directory of the PNG plots")
    parser.add_argument(
        "--experiments", required=True, type=json.loads,
        help='{"distill": {...}, "quantize": {...}, "lit": {...}, "esnac": {...}, "translation": {...}} as JSON; any '
             'kind may be absent',
    )
    parser.add_argument("records", nargs="*", type=Path,
                        help="record.json files of finished runs and ESNAC searches")
    parser.add_argument("--record-lists", nargs="*", type=Path, default=[],
                        help='JSON files {"records": [record.json paths]} (one per ESNAC search)')
    args = parser.parse_intermixed_args(argv)
    listed = [Path(path) for lst in args.record_lists for path in json.loads(lst.read_text())["records"]]
    records = load_records([*args.records, *listed])
    written = write_tables(records, args.experiments, args.tables) + write_plots(records, args.experiments, args.plots)
    logging.getLogger("compresslib").info("%d records -> %d files", len(records), len(written))


if __name__ == "__main__":
    run_main(main)
