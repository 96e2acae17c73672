"""Rebuild results/tables/*.csv and results/plots/*.png from record.json files (the aggregate rule).

    python workflow_scripts/aggregate.py --tables results/tables --plots results/plots \
        --experiments '{"lma-cifar10": {"teacher": ..., "students": [...], ...}}' results/**/record.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from compresslib.cli import run_main
from compresslib.plots import write_plots
from compresslib.results import load_records, write_tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", required=True, type=Path, help="output directory of the CSV tables")
    parser.add_argument("--plots", required=True, type=Path, help="output directory of the PNG plots")
    parser.add_argument("--experiments", required=True, type=json.loads, help="distill experiments as JSON")
    parser.add_argument("records", nargs="*", type=Path, help="record.json files of finished runs")
    args = parser.parse_args(argv)
    records = load_records(args.records)
    written = write_tables(records, args.experiments, args.tables) + write_plots(records, args.experiments, args.plots)
    logging.getLogger("compresslib").info("%d records -> %d files", len(records), len(written))


if __name__ == "__main__":
    run_main(main)
