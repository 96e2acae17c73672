"""Token-count batching and padding for the translation models (OpenNMT-py's ``batch_size_fn``, as LMA used it).

A batch's cost is its padded size: ``batch size x the longest sentence width in it``, where a sentence's width
(:func:`sentence_widths`) is the larger of its source length (the source carries no bos/eos, as in OpenNMT-py)
and its target length + 1 (``tgt_in`` is bos + target, ``tgt_out`` is target + eos). :func:`token_batches` cuts a
split into batches whose cost is at most ``max_tokens``; one sentence wider than the budget is a batch of its own.

Training order (``shuffle=True``), from a generator seeded by ``(seed, epoch)`` only (so a resumed run draws the
same batches): the sentences are permuted, the permutation is cut into pools of about ``POOL_BATCHES`` batches'
worth of tokens, each pool is sorted by width (stably, so equal widths keep their random order) and cut greedily
into batches, and the order of all batches is shuffled. This is torchtext's ``pool`` batching that OpenNMT-py
(2018) used: sentences of similar length share a batch, so little is padding, yet batches differ between
epochs. Evaluation order (``shuffle=False``) sorts the whole split by width (ties by index) and keeps that order;
callers restore the original order from the indices.

:func:`collate` right-pads a batch into ``(src, tgt_in, tgt_out)``; padding (``pad_id``) is masked by the models
and by the losses, so it never changes a result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from compresslib.data.loader import epoch_seed

__all__ = ["POOL_BATCHES", "sentence_widths", "token_batches", "collate"]

POOL_BATCHES = 100  # torchtext/OpenNMT-py: a pool holds 100 batches' worth of examples
_BATCH_STREAM = 1  # epoch_seed stream for batch order (stream 0 seeds dropout in the training loop)


def sentence_widths(src: Sequence[torch.Tensor], tgt: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Each sentence's padded width (int64): ``max(source length, target length + 1)``, or the source length alone."""
    src_lengths = torch.tensor([len(s) for s in src], dtype=torch.int64)
    if tgt is None:
        return src_lengths.clamp_min(1)
    if len(tgt) != len(src):
        raise ValueError(f"{len(src)} source but {len(tgt)} target sentences")
    tgt_lengths = torch.tensor([len(t) for t in tgt], dtype=torch.int64)
    return torch.maximum(src_lengths, tgt_lengths + 1).clamp_min(1)


def _cut(order: torch.Tensor, widths: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Greedy batches over ``order`` (already sorted by width): add while ``count x widest <= max_tokens``."""
    batches, start, widest = [], 0, 0
    ordered_widths = widths[order].tolist()
    for position, width in enumerate(ordered_widths):
        count = position - start + 1
        if count > 1 and count * max(widest, width) > max_tokens:
            batches.append(order[start:position])
            start, widest = position, 0
        widest = max(widest, width)
    if start < len(ordered_widths):
        batches.append(order[start:])
    return batches


def token_batches(lengths: Sequence[int] | torch.Tensor, max_tokens: int, *, shuffle: bool, seed: int = 0,
                  epoch: int = 0) -> list[torch.Tensor]:
    """Batches (int64 index tensors) covering every sentence once; see the module docstring.

    ``lengths`` are the sentences' padded widths (:func:`sentence_widths`). Deterministic: the same arguments
    give the same batches; with ``shuffle`` they depend on ``(seed, epoch)`` and nothing else.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    widths = torch.as_tensor(lengths, dtype=torch.int64).reshape(-1)
    count = len(widths)
    if count == 0:
        return []
    if not shuffle:
        return _cut(torch.sort(widths, stable=True).indices, widths, max_tokens)
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, _BATCH_STREAM))
    permutation = torch.randperm(count, generator=generator)
    pool_tokens = POOL_BATCHES * max_tokens
    # pool boundaries: every pool holds about pool_tokens tokens of (unpadded) width, at least one sentence
    cumulative = widths[permutation].cumsum(0)
    total = int(cumulative[-1])
    cuts = torch.arange(pool_tokens, total + 1, pool_tokens) if total >= pool_tokens else cumulative.new_zeros(0)
    boundaries = torch.searchsorted(cumulative, cuts, right=True).tolist()
    batches, start = [], 0
    for end in [*boundaries, count]:
        if end <= start:
            continue
        pool = permutation[start:end]
        batches += _cut(pool[torch.sort(widths[pool], stable=True).indices], widths, max_tokens)
        start = end
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def collate(src_list: Sequence[torch.Tensor], tgt_list: Sequence[torch.Tensor] | None, pad_id: int, bos_id: int,
            eos_id: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(src (B, S), tgt_in (B, T), tgt_out (B, T))`` right-padded with ``pad_id`` (int64).

    ``src`` is the source ids as they are; ``tgt_in`` is bos + target, ``tgt_out`` target + eos, so
    ``T = longest target + 1``. Without targets (translation) only ``src`` is built.
    """
    if not len(src_list):
        raise ValueError("cannot collate an empty batch")
    src = pad_sequence([s.to(torch.int64) for s in src_list], batch_first=True, padding_value=pad_id)
    if src.shape[1] == 0:  # every source empty: keep one (padding) column so the models get a (B, 1) input
        src = torch.full((len(src_list), 1), pad_id, dtype=torch.int64)
    if tgt_list is None:
        return src, None, None
    bos, eos = torch.tensor([bos_id]), torch.tensor([eos_id])
    tgt_in = pad_sequence([torch.cat([bos, t.to(torch.int64)]) for t in tgt_list], batch_first=True,
                          padding_value=pad_id)
    tgt_out = pad_sequence([torch.cat([t.to(torch.int64), eos]) for t in tgt_list], batch_first=True,
                           padding_value=pad_id)
    return src, tgt_in, tgt_out
