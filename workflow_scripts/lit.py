"""Train a student from a teacher with LIT: blockwise phase 1, then full-model KD (one training job).

Snakemake calls it from rules/lit.smk with TrainSpec settings; by hand it runs the same way, or from an
original LIT YAML file (the lit-code README's format: models, sequence, params, hyperparameters):

    python workflow_scripts/lit.py --data resources/cifar10/dataset.pt \
        --teacher results/teachers/cifar10/resnet110/seed1/model.pt --run-dir results/lit/my-run \
        model=resnet20 kd.temperature=6 kd.weight=0.05 lit.epochs=175 lit.beta=0.75 ...
    python workflow_scripts/lit.py --lit-config config.yml [--data ...] [--run-dir ...] [key=value ...]

With --lit-config, models.base_model_path is the teacher (a compresslib model.pt), params.save_directory
the run directory and models.training_checkpoint the student's starting weights (a compresslib model.pt);
--data defaults to resources/<models.dataset>/dataset.pt; options and key=value settings override the file.
A rerun resumes from the run directory's checkpoint, in either phase.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from compresslib.cli import add_run_options, run_main
from compresslib.lit import from_lit_yaml
from compresslib.models import model_file_info
from compresslib.training.loop import train
from compresslib.specs.training import build_spec

log = logging.getLogger("compresslib")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lit-config", type=Path, help="an original LIT YAML file")
    parser.add_argument("--data", help="prepared dataset (resources/<dataset>/dataset.pt)")
    add_run_options(parser, "model.pt, history.csv, record.json", required=False)
    parser.add_argument("--teacher", help="teacher model.pt (a network with stem / sections / head)")
    parser.add_argument("--init", help="model.pt the student starts from (the stem and head are the teacher's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="TrainSpec settings")
    args = parser.parse_intermixed_args(argv)

    values, teacher, init, run_dir, teacher_model = {}, args.teacher, args.init, args.run_dir, None
    if args.lit_config is not None:
        job = from_lit_yaml(yaml.safe_load(args.lit_config.read_text(encoding="utf-8")))
        values, teacher_model = job.values, job.teacher_model
        teacher, init, run_dir = teacher or job.teacher_path, init or job.init_path, run_dir or job.run_dir
        for note in job.notes:
            log.info("%s: %s", args.lit_config, note)
    spec = build_spec(values | {"threads": args.threads}, args.settings)
    missing = [option for option, value in (("--run-dir", run_dir), ("--teacher", teacher)) if not value]
    if missing or spec.lit is None:
        parser.error(f"LIT needs {', '.join(missing) or 'lit.* settings (or --lit-config)'}")
    if teacher_model is not None and (name := model_file_info(teacher)["name"]) != teacher_model:
        parser.error(f"{teacher} is a {name}, but models.base_architecture asks for {teacher_model}")
    log.info("spec: %s", json.dumps(spec.to_dict(), sort_keys=True))
    train(spec, args.data or f"resources/{spec.dataset}/dataset.pt", run_dir, teacher_path=teacher, init_path=init,
          command=[sys.executable, *sys.argv], overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
