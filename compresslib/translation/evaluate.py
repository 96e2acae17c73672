"""Evaluating translation models: beam-search translation, BLEU (sacrebleu) and perplexity.

* :func:`translate_ids` / :func:`translate`: beam search (``compresslib.translation.decoding.beam_search``) over a
  list of source sentences, batched by tokens (``batch size x longest source <= batch_tokens``, sentences sorted
  by length), the original order restored. :func:`translate` detokenises with the target SentencePiece model.
  The length limit per batch is ``max_length``, or ``min(max_length, ceil(max_ratio x longest source of the
  batch))`` with a ``max_ratio`` (at least 1 token).
* :func:`bleu`: ``sacrebleu``'s corpus BLEU of detokenised hypotheses against the raw references with its
  default 13a tokenisation, and the metric's signature string (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|
  version:...``). ``lowercase=True`` scores case-insensitively (QD's ``multi-bleu.perl -lc``); the signature
  then says ``case:lc``.
* :func:`perplexity`: ``exp(sum of token NLL / number of target tokens)`` with teacher forcing, eos counted and
  padding not (QD's ``exp(Σ NLL / #target tokens)``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence

import sacrebleu
import torch
import torch.nn.functional as F

from compresslib.translation.batching import collate, sentence_widths, token_batches
from compresslib.data.corpus import Tokenizer
from compresslib.translation.decoding import beam_search
from compresslib.models.seq2seq import Seq2Seq

__all__ = ["translate", "translate_ids", "bleu", "perplexity", "eval_batches"]


@torch.no_grad()
def translate_ids(model: Seq2Seq, sentences: Sequence[torch.Tensor], *, beam_size: int = 5, max_length: int = 100,
                  batch_tokens: int = 1024, device: torch.device | str = "cpu", max_ratio: float | None = None,
                  autocast: torch.autocast | None = None) -> list[list[int]]:
    """Beam-search translations (target ids without bos/eos) of ``sentences``, in their order; eval mode."""
    model.eval()
    outputs: list[list[int] | None] = [None] * len(sentences)
    widths = sentence_widths(sentences)
    with autocast or contextlib.nullcontext():
        for index in token_batches(widths, batch_tokens, shuffle=False):
            src, _, _ = collate([sentences[i] for i in index.tolist()], None, model.pad_id, model.bos_id,
                                model.eos_id)
            limit = max_length
            if max_ratio is not None:
                limit = max(1, min(max_length, math.ceil(max_ratio * int(widths[index].max()))))
            hypotheses = beam_search(model, src.to(device), beam_size=beam_size, max_length=limit)
            for i, hypothesis in zip(index.tolist(), hypotheses):
                outputs[i] = hypothesis
    return outputs  # type: ignore[return-value]


def translate(model: Seq2Seq, tokenizer_tgt: Tokenizer, sentences: Sequence[torch.Tensor], *, beam_size: int = 5,
              max_length: int = 100, batch_tokens: int = 1024, device: torch.device | str = "cpu",
              max_ratio: float | None = None, autocast: torch.autocast | None = None) -> list[str]:
    """Detokenised beam-search translations of ``sentences`` (source id tensors), in their order."""
    ids = translate_ids(model, sentences, beam_size=beam_size, max_length=max_length, batch_tokens=batch_tokens,
                        device=device, max_ratio=max_ratio, autocast=autocast)
    return tokenizer_tgt.decode(ids)


def bleu(hypotheses: Sequence[str], references: Sequence[str], *, lowercase: bool = False) -> tuple[float, str]:
    """``(corpus BLEU, sacrebleu signature)`` of detokenised ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = sacrebleu.metrics.BLEU(lowercase=lowercase)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return float(score.score), str(metric.get_signature())


def eval_batches(src: Sequence[torch.Tensor], tgt: Sequence[torch.Tensor], batch_tokens: int, pad_id: int,
                 bos_id: int, eos_id: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The collated ``(src, tgt_in, tgt_out)`` batches of a split in evaluation order (sorted by width), on the CPU."""
    batches = token_batches(sentence_widths(src, tgt), batch_tokens, shuffle=False)
    return [collate([src[i] for i in index.tolist()], [tgt[i] for i in index.tolist()], pad_id, bos_id, eos_id)
            for index in batches]


@torch.inference_mode()
def perplexity(model: Seq2Seq, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *,
               device: torch.device | str = "cpu", autocast: torch.autocast | None = None) -> tuple[float, float, int]:
    """``(perplexity, mean token NLL, target tokens)`` of ``model`` (eval mode) over collated ``batches``."""
    model.eval()
    device = torch.device(device)
    nll = torch.zeros((), dtype=torch.float64, device=device)
    tokens = 0
    with autocast or contextlib.nullcontext():
        for src, tgt_in, tgt_out in batches:
            src, tgt_in, tgt_out = src.to(device), tgt_in.to(device), tgt_out.to(device)
            logits = model(src, tgt_in).float()
            nll += F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=model.pad_id,
                                   reduction="sum").double()
            tokens += int(tgt_out.ne(model.pad_id).sum())
    if tokens == 0:
        raise ValueError("perplexity over no target tokens")
    mean = nll.item() / tokens
    return math.exp(min(mean, 700.0)), mean, tokens  # exp overflows past ~709: a useless model reads as 1e304
