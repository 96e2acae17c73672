"""Post-training ("PM") quantization of a trained full-precision student: one quantize job, no training.

Snakemake calls it from rules/quantize.smk (method pm); the same command runs by hand:

    python workflow_scripts/post_training_quantize.py \
        --model results/distill/cifar10/conv-teacher/conv-s0/relu/seed1/model.pt --data resources/cifar10/dataset.pt \
        --run-dir results/quantize/cifar10/conv-teacher/conv-s0/pm-b2-k256/relu/seed1 \
        quant.method=pm quant.bits=2 quant.bucket_size=256

Settings are ``key=value`` overrides of compresslib.specs.training.PostTrainingSpec (``quant.bucket_size=null``: one
bucket per tensor; ``quant.quantize_first_last=true``; ``quant.skip_by=registration``: the original's rule for the
first and last layer; ``device=cpu``). It writes model.pt (quantized weights), model.packed (the packed file whose
size the tables report) and record.json into the run directory.
"""

from __future__ import annotations

import argparse
import sys

from compresslib.cli import add_run_options, run_main
from compresslib.settings import build_settings
from compresslib.training.post_training import post_training_quantize
from compresslib.specs.training import PostTrainingSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained full-precision model.pt")
    parser.add_argument("--data", required=True, help="prepared dataset the model was trained on")
    add_run_options(parser, "model.pt, model.packed, record.json")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="PostTrainingSpec settings")
    args = parser.parse_intermixed_args(argv)
    spec = build_settings(PostTrainingSpec, {}, args.settings)
    post_training_quantize(spec, args.model, args.data, args.run_dir, command=[sys.executable, *sys.argv],
                           overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
