"""A model's translations of a corpus split: the text file, and the ids file that sequence-level KD trains on.

Sequence-level KD (Kim & Rush; QD's ``create_distillation_dataset``, LMA's ``-seq_level``) replaces a student's
training targets with its teacher's beam translations of the training sources. :func:`translate_split` makes
them once per teacher (the workflow's ``translate_training_split`` job); the ids file it writes is read back by
:func:`load_targets`, checked against the corpus it was made from. Its layout (``torch.save``, plain state)::

    {"format": 1, "corpus_sha256", "model_sha256", "split", "beam_size", "max_length", "max_ratio",
     "tgt_ids" (flat int32), "tgt_offsets" (int64, n + 1), "command"}

Translation ``i`` is ``tgt_ids[tgt_offsets[i]:tgt_offsets[i + 1]]``, target-side piece ids without bos/eos.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import torch

from compresslib.data.corpus import load_corpus, split_sentences, tokenizers
from compresslib.devices import device_precision, place
from compresslib.io import atomic_open, load_versioned, save_torch, verified_sha256
from compresslib.models import load_model
from compresslib.translation.evaluate import translate_ids

__all__ = ["TARGETS_FORMAT", "translate_split", "save_targets", "load_targets"]

log = logging.getLogger(__name__)

TARGETS_FORMAT = 1


def translate_split(model_path: str | Path, corpus_path: str | Path, split: str, *, text_path: str | Path | None,
                    ids_path: str | Path | None, beam_size: int = 5, max_length: int = 100,
                    max_ratio: float | None = None, batch_tokens: int = 1024, device: str = "auto",
                    threads: int = 0, command: list[str] | None = None) -> None:
    """Translate ``split`` of a prepared corpus with a trained translation model (beam search; bf16 autocast on
    CUDA) and write, atomically, the detokenised translations to ``text_path`` (one line per sentence) and their
    target ids to ``ids_path`` (the targets file); either may be None. ``threads``: torch's CPU threads (0: its
    default)."""
    if text_path is None and ids_path is None:
        raise ValueError("nothing to write: give a text file, an ids file or both")
    if beam_size < 1 or max_length < 1 or batch_tokens < 1:
        raise ValueError("beam size, max length and batch tokens must be >= 1")
    if max_ratio is not None and max_ratio <= 0:
        raise ValueError(f"max ratio must be > 0, got {max_ratio}")
    corpus_sha256, model_sha256 = verified_sha256(corpus_path), verified_sha256(model_path)
    if threads:
        torch.set_num_threads(threads)
    corpus = load_corpus(corpus_path)
    with place(device) as placement:
        model, meta = load_model(model_path, placement.device)
        if meta.get("corpus_sha256") != corpus_sha256:
            raise ValueError(f"{model_path} was trained on corpus file sha256 {meta.get('corpus_sha256')}, not on "
                             f"{corpus_path} ({corpus_sha256})")
        sources = split_sentences(corpus, split, "src")
        tick = time.perf_counter()
        ids = translate_ids(model, sources, beam_size=beam_size, max_length=max_length, batch_tokens=batch_tokens,
                            device=placement.device, max_ratio=max_ratio,
                            autocast=device_precision(placement.device, images=False).autocast)
        log.info("translated %d %s sentences in %.1fs on %s", len(sources), split, time.perf_counter() - tick,
                 placement.device)
    if text_path is not None:
        with atomic_open(text_path, "w", encoding="utf-8") as handle:
            handle.writelines(line.replace("\n", " ") + "\n" for line in tokenizers(corpus)[1].decode(ids))
    if ids_path is not None:
        save_targets(ids_path, ids, corpus_sha256=corpus_sha256, model_sha256=model_sha256, split=split,
                     beam_size=beam_size, max_length=max_length, max_ratio=max_ratio, command=command)


def save_targets(path: str | Path, ids: list[list[int]], **facts: object) -> None:
    """Write a targets file (the module docstring's layout) from the translations' piece ids and their facts."""
    lengths = torch.tensor([len(sentence) for sentence in ids], dtype=torch.int64)
    offsets = torch.zeros(len(ids) + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    save_torch(path, {"format": TARGETS_FORMAT, **facts,
                      "tgt_ids": torch.tensor(list(itertools.chain.from_iterable(ids)), dtype=torch.int32),
                      "tgt_offsets": offsets}, checksum=True)


def load_targets(path: str | Path, corpus_sha256: str, sentences: int,
                 tgt_vocab: int) -> tuple[list[torch.Tensor], dict]:
    """The training targets of a sequence-level KD targets file, checked against the corpus it was made from, and
    the file's other entries (``model_sha256``, ``split``, ``beam_size``, ...)."""
    payload = load_versioned(path, TARGETS_FORMAT, "sequence-level KD targets file",
                             "write it with workflow_scripts/translate.py --split train")
    for key in ("corpus_sha256", "tgt_ids", "tgt_offsets"):
        if key not in payload:
            raise ValueError(f"{path}: targets file lacks {key!r}")
    if payload["corpus_sha256"] != corpus_sha256:
        raise ValueError(f"{path} holds translations of a different corpus file (sha256 {payload['corpus_sha256']}, "
                         f"this corpus {corpus_sha256}); translate this corpus's training split again")
    ids, offsets = payload["tgt_ids"], payload["tgt_offsets"]
    if len(offsets) != sentences + 1 or offsets[0] != 0 or offsets[-1] != ids.numel():
        raise ValueError(f"{path} holds {len(offsets) - 1} translations with offsets {int(offsets[0])}..."
                         f"{int(offsets[-1])} over {ids.numel()} ids; the training split has {sentences} sentences")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= tgt_vocab):
        raise ValueError(f"{path}: target ids outside the corpus's target vocabulary of {tgt_vocab}")
    meta = {key: value for key, value in payload.items() if key not in ("tgt_ids", "tgt_offsets")}
    return list(torch.split(ids.to(torch.int64), offsets.diff().tolist())), meta
