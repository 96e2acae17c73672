"""Translate a split of a prepared corpus with a trained translation model (beam search), e.g. for sequence-level KD.

    python workflow_scripts/translate.py --model results/.../teacher/model.pt --corpus resources/<corpus>/corpus.pt \
        --split train --text results/.../teacher/seq-kd/train.txt --ids results/.../teacher/seq-kd/targets.pt

Writes (atomically) ``--text``: the detokenised translations, one line per sentence of the split, and ``--ids``:
their target-side piece ids, the targets file (compresslib.translation.targets). With ``--split train`` that file is
the training targets of a sequence-level distilled student (Kim & Rush; QD's ``create_distillation_dataset``): the
teacher's beam-5 translations of the training sources, built once as a rule output and passed to
``workflow_scripts/train_translation.py --targets``.
"""

from __future__ import annotations

import argparse
import sys

from compresslib.cli import run_main
from compresslib.translation.targets import translate_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained translation model.pt")
    parser.add_argument("--corpus", required=True, help="the prepared corpus the model was trained on")
    parser.add_argument("--split", default="train", help="split to translate (default: train)")
    parser.add_argument("--text", help="output: detokenised translations, one line per sentence")
    parser.add_argument("--ids", help="output: target piece ids (the sequence-level KD targets file)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=100, help="at most this many generated tokens")
    parser.add_argument("--max-ratio", type=float, help="also at most ceil(ratio x longest source of a batch) tokens")
    parser.add_argument("--batch-tokens", type=int, default=1024, help="sentences x longest source per batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)
    if not args.text and not args.ids:
        parser.error("nothing to write: give --text, --ids or both")
    translate_split(args.model, args.corpus, args.split, text_path=args.text, ids_path=args.ids,
                    beam_size=args.beam_size, max_length=args.max_length, max_ratio=args.max_ratio,
                    batch_tokens=args.batch_tokens, device=args.device, threads=args.threads,
                    command=[sys.executable, *sys.argv])


if __name__ == "__main__":
    run_main(main)
