"""Fully train an architecture ESNAC's search found, from its search weights (one training job).

Snakemake calls it from rules/esnac.smk for each of a search's top architectures; by hand:

    python workflow_scripts/esnac_train.py --data resources/cifar100/dataset.pt \
        --arch results/esnac/cifar100/esnac-resnet18-c100/esnac/seed127/top/arch-0.pt \
        --run-dir results/esnac/cifar100/esnac-resnet18-c100/esnac/seed127/final-0 epochs=300 lr=0.01

The architecture file fixes the model (``esnac_net`` and its layers), the input normalisation (the
teacher's) and the starting weights; ``key=value`` settings give the recipe (TrainSpec). A rerun resumes
from the run directory's checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from compresslib.cli import add_run_options, run_main
from compresslib.models import model_file_info
from compresslib.training.loop import train
from compresslib.specs.training import ESNAC_MODEL, build_spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (resources/<dataset>/dataset.pt)")
    parser.add_argument("--arch", required=True, help="an architecture file of a search (top/arch-<rank>.pt)")
    add_run_options(parser, "model.pt, history.csv, record.json")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="TrainSpec settings")
    args = parser.parse_intermixed_args(argv)
    arch = model_file_info(args.arch)
    if arch["name"] != ESNAC_MODEL:
        parser.error(f"{args.arch} is a {arch['name']}, not an architecture ESNAC's search wrote ({ESNAC_MODEL})")
    kwargs = {key: value for key, value in arch["kwargs"].items() if key not in ("num_classes", "activation")}
    values = {"kind": "esnac", "model": ESNAC_MODEL, "model_kwargs": kwargs, "dataset": arch["dataset"],
              "threads": args.threads, "mean": arch["normalization"]["mean"], "std": arch["normalization"]["std"]}
    spec = build_spec(values, args.settings)
    logging.getLogger("compresslib").info("spec (architecture omitted): %s", json.dumps(
        spec.to_dict() | {"model_kwargs": f"<{len(kwargs['layers'])} layers>"}, sort_keys=True))
    train(spec, args.data, args.run_dir, init_path=args.arch, command=[sys.executable, *sys.argv],
          overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
