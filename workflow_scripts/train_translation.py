"""Train a translation teacher, a word- or sequence-level distilled student, or a quantized student: one job.

    python workflow_scripts/train_translation.py --corpus resources/onmt_integration/corpus.pt \
        --run-dir results/translation/onmt_integration/transformer-teacher/seed1 \
        corpus=onmt_integration model=transformer_nmt 'model_kwargs={"layers": 6, "d_model": 512}' epochs=15

Settings are ``key=value`` overrides of compresslib.specs.translation.TranslationSpec (``kind=distill``,
``optimizer=sgd``, ``kd.weight=0.7``, ``quant.bits=2``). ``--teacher`` (with ``kd`` settings) distils word-level from
a trained model; ``--targets`` (written by workflow_scripts/translate.py) trains on the teacher's translations
(sequence-level KD, ``kind=seq_distill``).
A rerun resumes from the run directory's checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from compresslib.cli import add_run_options, run_main
from compresslib.specs.translation import build_translation_spec
from compresslib.translation.train import train_translation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="prepared corpus (prepare_corpus)")
    add_run_options(parser, "model.pt, translations/, history.csv, record.json")
    parser.add_argument("--teacher", help="teacher model.pt: word-level KD (needs kd settings)")
    parser.add_argument("--targets", help="sequence-level KD targets (workflow_scripts/translate.py --ids)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("settings", nargs="*", metavar="key=value", help="TranslationSpec settings")
    args = parser.parse_intermixed_args(argv)  # options may follow key=value settings
    spec = build_translation_spec({"threads": args.threads}, args.settings)
    logging.getLogger("compresslib").info("spec: %s", json.dumps(spec.to_dict(), sort_keys=True))
    train_translation(spec, args.corpus, args.run_dir, teacher_path=args.teacher, targets_path=args.targets,
                      command=[sys.executable, *sys.argv], overwrite=args.overwrite)


if __name__ == "__main__":
    run_main(main)
