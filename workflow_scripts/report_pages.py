"""Write the Snakemake report's own pages from the tables and records (the report_pages rule): one HTML page per
table, and the front page (the study's experiments and the software its runs recorded).

    python workflow_scripts/report_pages.py --tables results/tables --pages results/report/tables \
        --front-page results/report/study.rst --experiments '{"distill": {...}, ...}' \
        results/**/record.json --record-lists results/esnac/.../records.json

--experiments is aggregate.py's argument (compresslib.experiments.aggregation_experiments); the records and
record lists are aggregate.py's too. `snakemake --report report.html` then embeds the pages (rules/report.smk).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from compresslib import report
from compresslib.cli import run_main
from compresslib.experiments import family_titles, load_records, report_tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", required=True, type=Path, help="directory of the tables (aggregate.py's --tables)")
    parser.add_argument("--pages", required=True, type=Path, help="output directory of the table pages")
    parser.add_argument("--front-page", required=True, type=Path, help="output path of the front page (.rst)")
    parser.add_argument("--experiments", required=True, type=json.loads,
                        help="the config's experiments by family, as JSON (aggregate.py's --experiments)")
    parser.add_argument("records", nargs="*", type=Path, help="record.json files of finished runs and ESNAC searches")
    parser.add_argument("--record-lists", nargs="*", type=Path, default=[],
                        help='JSON files {"records": [record.json paths]} (one per ESNAC search)')
    args = parser.parse_intermixed_args(argv)
    records = load_records(args.records, args.record_lists)
    pages = report.table_pages(report_tables(args.tables), args.pages)
    report.write_pages(pages, args.front_page, report.front_page(args.experiments, family_titles(), records))
    logging.getLogger("compresslib").info("%d table pages and the front page from %d records", len(pages),
                                          len(records))


if __name__ == "__main__":
    run_main(main)
