"""Rebuild results/tables (CSV and Markdown) and results/plots (PNG) from record.json files (the aggregate rule).

    python workflow_scripts/aggregate.py --tables results/tables --plots results/plots \
        --experiments '{"distill": {"lma-cifar10": {...}}, "quantize": {"qd-cifar10": {...}}, "lit": {...},
                        "esnac": {...}, "translation": {...}}' \
        results/**/record.json

--experiments holds config.yaml's experiments by family, as compresslib.experiments.aggregation_experiments gives
them (each family's ``experiments`` function in compresslib/experiments/<family>.py says what an experiment holds);
any family may be absent.

The records are those of training runs (translation runs included: kind translation) and of ESNAC searches (kind
esnac_search); runs.csv and runs-<kind>.csv list the training runs.
--record-lists names record lists (compresslib.runs.record.write_record_list; rules/esnac.smk writes one per search,
listing the search's record and those of its fully trained architectures, whose number is known only after it).
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
             'family may be absent',
    )
    parser.add_argument("records", nargs="*", type=Path,
                        help="record.json files of finished runs and ESNAC searches")
    parser.add_argument("--record-lists", nargs="*", type=Path, default=[],
                        help='JSON files {"records": [record.json paths]} (one per ESNAC search)')
    args = parser.parse_intermixed_args(argv)
    records = load_records(args.records, args.record_lists)
    written = write_tables(records, args.experiments, args.tables) + write_plots(records, args.experiments, args.plots)
    logging.getLogger("compresslib").info("%d records -> %d files", len(records), len(written))


if __name__ == "__main__":
    run_main(main)
