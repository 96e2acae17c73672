"""The interface of the sequence-to-sequence translation models (``Seq2Seq``), which decoding and training use.

Common interface (``Seq2Seq``). Token ids are int64; ``pad_id`` (0), ``bos_id`` (2) and ``eos_id`` (3) are
constructor arguments. ``src_mask`` is a bool (B, S) tensor, True at real tokens (``None``: ``src != pad_id``).

* ``forward(src (B, S), tgt_in (B, T), src_mask=None) -> logits (B, T, V)``: teacher forcing; ``tgt_in``
  starts with bos. Padding is masked everywhere (encoder self-attention, decoder self-attention, attention
  over the source, the LSTM's packed encoder and attention softmax), so padded positions never change a
  non-padded output.
* ``encode(src, src_mask=None) -> state``: everything the decoder needs (a dict of tensors with the batch on
  dim 0, plus plain ints); ``decode_step(tokens (B,), state) -> (logits (B, V), state)`` feeds one target
  token per sentence and returns the next-token logits; ``reorder_state(state, index)`` selects / repeats
  batch rows (beam search). Feeding ``tgt_in`` column by column through ``decode_step`` gives ``forward``'s
  logits (up to float rounding).

The models: ``transformer_nmt`` (``compresslib.models.transformer_nmt``, LMA) and ``lstm_nmt``
(``compresslib.models.lstm_nmt``, QD), both following OpenNMT-py as it stood in 2018 (the 0.x releases the papers
forked), re-implemented.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compresslib.catalog import BOS_ID, EOS_ID, PAD_ID

__all__ = ["State", "Seq2Seq", "reorder_state", "allow_empty_rows"]

State = dict[str, Any]


def reorder_state(state: Any, index: torch.Tensor) -> Any:
    """Select rows ``index`` (dim 0) of every tensor in a (nested dict / list / tuple) decoder state."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: reorder_state(value, index) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_state(value, index) for value in state)
    return state  # ints and other per-batch constants


def allow_empty_rows(mask: torch.Tensor) -> torch.Tensor:
    """Let a query that may attend to nothing (an all-padding source) attend everywhere, avoiding NaN.
    Such rows only occur for inputs without any real token, whose outputs mean nothing anyway."""
    return mask | ~mask.any(dim=-1, keepdim=True)


class Seq2Seq(nn.Module):
    """Interface shared by the translation models and used by ``compresslib.translation.decoding``."""

    def __init__(self, src_vocab: int, tgt_vocab: int, pad_id: int = PAD_ID, bos_id: int = BOS_ID,
                 eos_id: int = EOS_ID) -> None:
        super().__init__()
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    def source_mask(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``src_mask`` as bool (B, S), True at real tokens; derived from ``pad_id`` when None."""
        return src.ne(self.pad_id) if src_mask is None else src_mask.to(torch.bool)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> State:
        raise NotImplementedError

    def decode_step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return reorder_state(state, index)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError
