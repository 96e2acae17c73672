"""Post-training ("PM") quantization of a trained full-precision student: one quantize job, no training.

Snakemake calls it from rules/quantize.smk (method pm); the same command runs by hand:

    python workflow_scripts/post_training_quantize.py --model results/distill/cifar10/conv-teacher/conv-s0/relu/seed1/model.pt \
        --data resources/cifar10/dataset.pt --run-dir results/quantize/cifar10/conv-teacher/conv-s0/pm-b2-k256/relu/seed1 \
        --bits 2 --bucket-size 256

It writes model.pt (quantized weights), model.packed (the packed file whose size the tables report) and
record.json into the run directory.
"""

from __future__ import annotations

import argparse
import sys

from compresslib.cli import run_main
from compresslib.quantization.post_training import post_training_quantize
from compresslib.quantization.shadow import SKIP_BY


def bucket_size(text: str) -> int | None:
    return None if text == "none" else int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained full-precision model.pt")
    parser.add_argument("--data", required=True, help="prepared dataset the model was trained on")
    parser.add_argument("--run-dir", required=True, help="directory for model.pt, model.packed, record.json")
    parser.add_argument("--bits", required=True, type=int, help="bits per quantized weight (2..8)")
    parser.add_argument("--bucket-size", required=True, type=bucket_size,
                        help="elements per min-max bucket, or 'none' for one bucket per tensor")
    parser.add_argument("--quantize-first-last", action="store_true", help="also quantize the first and last layer")
    parser.add_argument("--skip-by", choices=SKIP_BY, default="layers",
                        help="what 'first and last layer' means (registration: the original's parameter order)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<i>")
    args = parser.parse_args(argv)
    post_training_quantize(args.model, args.data, args.run_dir, args.bits, args.bucket_size,
                           quantize_first_last=args.quantize_first_last, skip_by=args.skip_by, device=args.device,
                           command=[sys.executable, *sys.argv])


if __name__ == "__main__":
    run_main(main)
