"""Search compressed architectures of a teacher with ESNAC's learned-kernel Bayesian optimisation, or with
random search at the same budget (one job per dataset, teacher, strategy and seed).

Snakemake calls it from rules/esnac.smk; by hand:

    python workflow_scripts/esnac_search.py --data resources/cifar100/dataset.pt \
        --teacher results/teachers/cifar100/esnac-resnet18-c100/seed1/model.pt \
        --run-dir results/esnac/my-search dataset=cifar100 strategy=esnac seed=127 steps=20

Settings are ``key=value`` overrides of compresslib.specs.esnac.SearchSpec (``kernel.max_steps=50``,
``holdout_split=last``). The search's held-out split must be the one the teacher did not train on. A rerun
resumes from the run directory's search state without re-evaluating finished candidates.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from compresslib.cli import add_run_options, run_main
from compresslib.esnac.search import search
from compresslib.specs.esnac import SearchSpec
from compresslib.settings import build_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (resources/<dataset>/dataset.pt)")
    parser.add_argument("--teacher", required=True, help="the teacher's model.pt")
    add_run_options(parser, "search.csv, top/, record.json")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="SearchSpec settings")
    args = parser.parse_intermixed_args(argv)
    spec = build_settings(SearchSpec, {"threads": args.threads}, args.settings)
    logging.getLogger("compresslib").info("spec: %s", json.dumps(spec.to_dict(), sort_keys=True))
    search(spec, args.data, args.teacher, args.run_dir, command=[sys.executable, *sys.argv], overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
