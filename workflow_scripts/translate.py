"""Translate a split of a prepared corpus with a trained translation model (beam search), e.g. for sequence-level KD.

    python workflow_scripts/translate.py --model results/.../teacher/model.pt --corpus resources/<corpus>/corpus.pt \
        --split train --text results/.../teacher/translations-train.txt --ids results/.../teacher/seq-kd-targets.pt

Writes (atomically) ``--text``: the detokenised translations, one line per sentence of the split, and ``--ids``:
the target-side piece ids of the translations, ``{"format": 1, "corpus_sha256", "model_sha256", "split",
"beam_size", "max_length", "tgt_ids" (flat int32), "tgt_offsets" (int64, n + 1)}``. With ``--split train`` that
file is the training targets of a sequence-level distilled student (Kim & Rush; QD's
``create_distillation_dataset``): the teacher's beam-5 translations of the training sources, built once as a rule
output and passed to ``workflow_scripts/train_translation.py --targets``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time

import torch

from compresslib.cli import run_main
from compresslib.devices import place
from compresslib.io import atomic_open, save_torch, sha256_file
from compresslib.models import load_model
from compresslib.translation import models as _models  # noqa: F401  (registers the translation models)
from compresslib.translation.corpus import load_corpus, split_sentences, tokenizers
from compresslib.translation.evaluate import translate_ids
from compresslib.translation.train import TARGETS_FORMAT

log = logging.getLogger("compresslib")


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
    if args.beam_size < 1 or args.max_length < 1 or args.batch_tokens < 1:
        raise ValueError("--beam-size, --max-length and --batch-tokens must be >= 1")
    if args.max_ratio is not None and args.max_ratio <= 0:
        raise ValueError(f"--max-ratio must be > 0, got {args.max_ratio}")
    if args.threads:
        torch.set_num_threads(args.threads)

    corpus = load_corpus(args.corpus)
    corpus_sha256 = sha256_file(args.corpus)
    with place(args.device) as placement:
        device = placement.device
        model, meta = load_model(args.model, device)
        if meta.get("corpus_sha256") != corpus_sha256:
            raise ValueError(f"{args.model} was trained on corpus file sha256 {meta.get('corpus_sha256')}, not on "
                             f"{args.corpus} ({corpus_sha256})")
        sources = split_sentences(corpus, args.split, "src")
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        tick = time.perf_counter()
        ids = translate_ids(model, sources, beam_size=args.beam_size, max_length=args.max_length,
                            batch_tokens=args.batch_tokens, device=device, max_ratio=args.max_ratio,
                            autocast=autocast)
        log.info("translated %d %s sentences in %.1fs on %s", len(sources), args.split, time.perf_counter() - tick,
                 device)
    if args.text:
        with atomic_open(args.text, "w", encoding="utf-8") as handle:
            handle.writelines(line.replace("\n", " ") + "\n" for line in tokenizers(corpus)[1].decode(ids))
    if args.ids:
        lengths = torch.tensor([len(sentence) for sentence in ids], dtype=torch.int64)
        offsets = torch.zeros(len(ids) + 1, dtype=torch.int64)
        offsets[1:] = lengths.cumsum(0)
        save_torch(args.ids, {
            "format": TARGETS_FORMAT, "corpus_sha256": corpus_sha256, "model_sha256": sha256_file(args.model),
            "split": args.split, "beam_size": args.beam_size, "max_length": args.max_length,
            "max_ratio": args.max_ratio,
            "tgt_ids": torch.tensor(list(itertools.chain.from_iterable(ids)), dtype=torch.int32),
            "tgt_offsets": offsets, "command": [sys.executable, *sys.argv],
        })


if __name__ == "__main__":
    run_main(main)
