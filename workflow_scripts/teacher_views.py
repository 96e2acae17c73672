"""Run a teacher once on every augmented view of every training image and save its logits (one job per teacher).

Snakemake calls it from rules/teachers.smk for a teacher whose students read their KD logits from the table
(``teacher_outputs=cached``); the same command runs by hand:

    python workflow_scripts/teacher_views.py --teacher results/teachers/cifar10/conv-teacher/seed1/model.pt \
        --data resources/cifar10/dataset.pt --out results/teachers/cifar10/conv-teacher/seed1/views.pt

Every pad-4 crop offset and flip (162 views per image) with the teacher's own normalisation; on CUDA under
bf16 autocast with channels_last, as the training loop runs an online teacher
(compresslib.training.teacher_views.make_teacher_views).
"""

from __future__ import annotations

import argparse

from compresslib.cli import run_main
from compresslib.training.teacher_views import make_teacher_views


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="teacher model.pt")
    parser.add_argument("--data", required=True, help="prepared dataset the teacher was trained on")
    parser.add_argument("--out", required=True, help="views file to write")
    parser.add_argument("--batch-size", type=int, default=1000, help="images per teacher forward pass")
    parser.add_argument("--device", default="auto", help="auto (a free GPU, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)
    make_teacher_views(args.teacher, args.data, args.out, batch_size=args.batch_size, device=args.device,
                       threads=args.threads)


if __name__ == "__main__":
    run_main(main)
