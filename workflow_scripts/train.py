"""Train a teacher, distil a student from a teacher, or train a quantized student: one training job.

Snakemake calls it from rules/teachers.smk, rules/distill.smk and rules/quantize.smk (QD and DQ); the
same command runs by hand:

    python workflow_scripts/train.py --data resources/cifar10/dataset.pt \
        --run-dir results/teachers/cifar10/conv-teacher/seed1 model=qd_conv_teacher epochs=200 lr=0.01

Settings are ``key=value`` overrides of compresslib.specs.training.TrainSpec (``kd.temperature=4``,
``model_kwargs={"dropout": 0.3}``, ``quant.bits=2``). A rerun resumes from the run directory's checkpoint.
Differentiable quantization learns the points of a trained student: ``--init`` and ``--teacher`` both
name that student's model.pt and ``quant.method=dq``. With ``teacher_outputs=cached`` a student reads its
teacher's logits from ``--teacher-views`` (made by workflow_scripts/teacher_views.py from the same teacher
file and dataset) instead of running the teacher.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from compresslib.cli import add_run_options, run_main
from compresslib.training.loop import train
from compresslib.specs.training import build_spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (resources/<dataset>/dataset.pt)")
    add_run_options(parser, "model.pt, history.csv, record.json")
    parser.add_argument("--teacher", help="teacher model.pt: distil a student (needs kd settings)")
    parser.add_argument("--init", help="trained model.pt to start from (differentiable quantization: quant.method=dq)")
    parser.add_argument("--teacher-views", help="the teacher's views file (teacher_outputs=cached)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="TrainSpec settings")
    args = parser.parse_intermixed_args(argv)  # options may follow key=value settings
    spec = build_spec({"threads": args.threads}, args.settings)
    logging.getLogger("compresslib").info("spec: %s", json.dumps(spec.to_dict(), sort_keys=True))
    train(spec, args.data, args.run_dir, teacher_path=args.teacher, init_path=args.init,
          teacher_views_path=args.teacher_views, command=[sys.executable, *sys.argv], overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
