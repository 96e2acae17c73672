"""OpenNMT-py's Transformer as LMA trained it (Xu et al., AAAI-20, github.com/LMA-NeurIPS19/LMA ``main_opennmt.py``):
a teacher of 6 layers, d = 512, 8 heads, and students of 3 layers with d = 256 / 128 / 64 whose FFN activation is
swapped for LMA, APLU, Swish or PReLU (``-stud_act``). The interface is ``compresslib.models.seq2seq.Seq2Seq``.

``TransformerNMT`` (OpenNMT-py 0.x ``TransformerEncoder`` / ``TransformerDecoder``):

* **Pre-norm**, as OpenNMT-py 0.x: each sublayer is ``x + dropout(sublayer(LayerNorm(x)))`` (the FFN's
  layer norm sits inside the FFN, as OpenNMT's ``PositionwiseFeedForward``), and encoder and decoder each end
  with a final LayerNorm. LayerNorm eps 1e-6 (OpenNMT's own LayerNorm).
* Embeddings scaled by sqrt(d), plus OpenNMT's sinusoidal positional encoding (sin on even, cos on odd
  features), then dropout. Separate source and target embeddings; the output projection ``generator`` is a
  separate Linear(d, V_tgt) with bias, **no weight tying** (OpenNMT's ``share_decoder_embeddings`` and
  ``share_embeddings`` default to off and neither paper sets them).
* Attention: four Linear(d, d) with bias (query, key, value, output) and
  ``torch.nn.functional.scaled_dot_product_attention`` with boolean masks; dropout on the attention weights.
* FFN: LayerNorm -> Linear(d, ffn) -> activation -> dropout -> Linear(ffn, d) -> dropout. The activation comes
  from ``compresslib.activations.create_activation(activation, ffn)``: relu, prelu, swish, aplu<K>, lma<K>,
  with the FFN hidden size as its channel count (LMA's code gave APLU/Swish the head count, 8, a bug; see
  docs/deviations.md). It sees (tokens, ffn) rows; when the activation keeps batch statistics (LMA) only the
  rows of real tokens are passed, so padding does not move its statistics either.
* ``ffn`` defaults to 2048: LMA's fork fixed the FFN hidden size at 2048 for every model (its
  ``transoformer_ff`` option is ignored), so the students have ffn 2048 too.
* Init: PyTorch's defaults (LMA used ``param_init 0``, i.e. no re-initialisation); the padding rows of the
  embeddings are zero.
* Incremental decoding caches each decoder layer's self-attention keys/values and the (fixed)
  cross-attention keys/values of the source.

Parameter counts (``count_parameters``; the formula ``transformer_nmt_parameter_count``), vocabulary 50,000 on each
side:

* LMA Transformer, 8 heads, ffn 2048, ReLU: teacher 6 x 512 **120,990,544**; students 3 x 256 **47,132,496**,
  3 x 128 **23,007,568**, 3 x 64 **11,387,472**. Another FFN activation adds, per FFN (2 x layers of them):
  PReLU 1, Swish 2048, APLU<K> 2 (K - 2) 2048, LMA<K> 2K; e.g. the 3 x 64 student with LMA8 has 11,387,568.
  Embeddings and generator make up 76,850,000 of the teacher's count (2 x 25.6 M + 25.65 M).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activations import LMA, create_activation
from compresslib.catalog import BOS_ID, EOS_ID, PAD_ID
from compresslib.models.registry import count_parameters, register_model
from compresslib.models.seq2seq import Seq2Seq, State, allow_empty_rows

__all__ = ["TRANSFORMER_CONFIGS", "TransformerNMT", "transformer_nmt", "transformer_nmt_parameter_count"]

LAYER_NORM_EPS = 1e-6  # OpenNMT-py 0.x's LayerNorm

# LMA's configurations (kwargs on top of the vocab sizes).
TRANSFORMER_CONFIGS: dict[str, dict[str, Any]] = {  # LMA; students get the -stud_act FFN activation
    "teacher": {"layers": 6, "d_model": 512},
    "student0": {"layers": 3, "d_model": 256},
    "student1": {"layers": 3, "d_model": 128},
    "student2": {"layers": 3, "d_model": 64},
}


def sinusoidal_positions(length: int, dim: int, offset: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """OpenNMT's positional encoding for positions offset..offset+length-1: (length, dim), sin on even features."""
    position = torch.arange(offset, offset + length, dtype=torch.float32, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class MultiHeadAttention(nn.Module):
    """Multi-head attention with bias-carrying projections; ``mask`` is bool, True where a key may be seen."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, d / H)
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.key(x)), self._split(self.value(x))

    def forward(self, x: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` (B, T, d) queries; ``key``/``value`` (B, H, S, d / H); ``mask`` broadcastable to (B, H, T, S)."""
        if mask is not None:
            mask = allow_empty_rows(mask)
        dropout = self.dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(self._split(self.query(x)), key, value, attn_mask=mask,
                                                 dropout_p=dropout)
        return self.out(context.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    """OpenNMT's PositionwiseFeedForward: LayerNorm -> Linear(d, ffn) -> act -> dropout -> Linear(ffn, d) -> dropout
    (the residual is added by the caller). ``keep`` (B, T) bool marks real tokens, the only rows an activation with
    batch statistics (LMA) sees."""

    def __init__(self, d_model: int, ffn: int, dropout: float, activation: Any) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.w_1 = nn.Linear(d_model, ffn)
        self.activation = create_activation(activation, ffn)
        self.w_2 = nn.Linear(ffn, d_model)
        self.dropout_1 = nn.Dropout(dropout)
        self.dropout_2 = nn.Dropout(dropout)
        self.batch_statistics = isinstance(self.activation, LMA)

    def _activate(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        rows = h.reshape(-1, h.shape[-1])  # (tokens, ffn): the activations' channel axis is dim 1
        if keep is None or not self.batch_statistics:
            return self.activation(rows).view(h.shape)
        keep = keep.reshape(-1)
        out = torch.zeros_like(rows)
        out[keep] = self.activation(rows[keep])
        return out.view(h.shape)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        h = self._activate(self.w_1(self.norm(x)), keep)
        return self.dropout_2(self.w_2(self.dropout_1(h)))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, activation: Any) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ffn, dropout, activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.dropout(self.self_attn(h, *self.self_attn.keys_values(h), mask))
        return x + self.feed_forward(x, keep)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, activation: Any) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.norm_2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.context_attn = MultiHeadAttention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ffn, dropout, activation)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        context_kv: tuple[torch.Tensor, torch.Tensor],
        context_mask: torch.Tensor,
        self_mask: torch.Tensor | None,
        keep: torch.Tensor | None = None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Returns the layer output and the self-attention keys/values of all positions so far (the cache)."""
        h = self.norm_1(x)
        key, value = self.self_attn.keys_values(h)
        if past_kv is not None:  # incremental decoding: x holds only the new position(s)
            key, value = torch.cat([past_kv[0], key], dim=2), torch.cat([past_kv[1], value], dim=2)
        query = x + self.dropout(self.self_attn(h, key, value, self_mask))
        mid = self.context_attn(self.norm_2(query), *context_kv, context_mask)
        out = query + self.dropout(mid)
        return out + self.feed_forward(out, keep), (key, value)


class TransformerNMT(Seq2Seq):
    """OpenNMT-py 0.x Transformer (pre-norm); see the module docstring."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        layers: int = 6,
        d_model: int = 512,
        heads: int = 8,
        ffn: int = 2048,  # fixed at 2048 for every LMA model
        dropout: float = 0.1,
        activation: Any = "relu",  # FFN activation: a compresslib.activations tag (or class / factory)
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> None:
        super().__init__(src_vocab, tgt_vocab, pad_id, bos_id, eos_id)
        if d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal encoding, got {d_model}")
        self.d_model = d_model
        self.src_embedding = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(dropout)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(d_model, heads, ffn, dropout, activation) for _ in range(layers))
        self.encoder_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, heads, ffn, dropout, activation) for _ in range(layers))
        self.decoder_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.generator = nn.Linear(d_model, tgt_vocab)

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = embedding(tokens) * math.sqrt(self.d_model)
        x = x + sinusoidal_positions(tokens.shape[1], self.d_model, offset, tokens.device).to(x.dtype)
        return self.embedding_dropout(x)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> State:
        src_mask = self.source_mask(src, src_mask)
        attn_mask = src_mask[:, None, None, :]  # (B, 1, 1, S): every query sees the real source tokens
        x = self._embed(self.src_embedding, src)
        for layer in self.encoder_layers:
            x = layer(x, attn_mask, src_mask)
        memory = self.encoder_norm(x)
        return {
            "memory": memory,
            "memory_mask": attn_mask,
            "context_kv": [layer.context_attn.keys_values(memory) for layer in self.decoder_layers],
            "self_kv": None,
            "step": 0,
        }

    def _decode(self, tgt: torch.Tensor, state: State, self_mask: torch.Tensor | None,
                keep: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        x = self._embed(self.tgt_embedding, tgt, offset=state["step"])
        past = state["self_kv"] or [None] * len(self.decoder_layers)
        new_kv = []
        for layer, context_kv, past_kv in zip(self.decoder_layers, state["context_kv"], past):
            x, kv = layer(x, context_kv, state["memory_mask"], self_mask, keep, past_kv)
            new_kv.append(kv)
        logits = self.generator(self.decoder_norm(x))
        return logits, {**state, "self_kv": new_kv, "step": state["step"] + tgt.shape[1]}

    def decode_step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        # One new position attends to all cached ones: no self-attention mask needed.
        logits, state = self._decode(tokens[:, None], state, self_mask=None, keep=None)
        return logits[:, 0], state

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        state = self.encode(src, src_mask)
        length = tgt_in.shape[1]
        keep = tgt_in.ne(self.pad_id)
        causal = torch.ones(length, length, dtype=torch.bool, device=tgt_in.device).tril()
        self_mask = causal & keep[:, None, None, :]  # (B, 1, T, T): earlier real target tokens
        logits, _ = self._decode(tgt_in, state, self_mask, keep)
        return logits


def transformer_nmt_parameter_count(src_vocab: int, tgt_vocab: int, layers: int = 6, d_model: int = 512,
                                    ffn: int = 2048, activation: Any = "relu") -> int:
    """Closed form of ``count_parameters(TransformerNMT(...))`` (the head count does not change it)."""
    d = d_model
    attention = 4 * (d * d + d)
    norm = 2 * d
    feed_forward = norm + (d * ffn + ffn) + (ffn * d + d) + count_parameters(create_activation(activation, ffn))
    encoder_layer = norm + attention + feed_forward
    decoder_layer = 2 * (norm + attention) + feed_forward
    embeddings = (src_vocab + tgt_vocab) * d
    generator = d * tgt_vocab + tgt_vocab
    return embeddings + layers * (encoder_layer + decoder_layer) + 2 * norm + generator


@register_model
def transformer_nmt(src_vocab: int, tgt_vocab: int, **kwargs: Any) -> TransformerNMT:
    """OpenNMT-py Transformer (LMA); defaults are LMA's teacher (6 x 512, 8 heads, ffn 2048)."""
    return TransformerNMT(src_vocab, tgt_vocab, **kwargs)
