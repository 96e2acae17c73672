"""Sequence-to-sequence translation models: OpenNMT-py's Transformer (LMA) and LSTM with attention (QD).

Both follow OpenNMT-py as it stood in 2018 (the 0.x releases the papers forked), re-implemented:

* LMA (Xu et al., AAAI-20, github.com/LMA-NeurIPS19/LMA ``main_opennmt.py``) trains a Transformer teacher
  (6 layers, d = 512, 8 heads) and students of 3 layers with d = 256 / 128 / 64 whose FFN activation is
  swapped for LMA, APLU, Swish or PReLU (``-stud_act``).
* QD (Polino, Pascanu, Alistarh, ICLR 2018, github.com/antspy/quantized_distillation ``onmt/``) trains an
  LSTM encoder-decoder with attention: teacher 2 layers x 500, students 1 layer x 128 / 256 / 512, word
  embeddings 500 everywhere.

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

``LstmNMT`` (OpenNMT-py 0.x ``RNNEncoder`` + ``InputFeedRNNDecoder``):

* Encoder: unidirectional ``nn.LSTM`` (``layers`` layers, dropout between layers) over packed sequences, so
  padding is never read; it needs right-padded sources (the real tokens first, ``src_mask`` a prefix).
* Decoder: a stack of ``LSTMCell`` with dropout between layers; its first input is the target embedding
  concatenated with the previous attentional vector (input feeding, zeros at step 0). Initial state = the
  encoder's final (h, c) per layer (encoder and decoder have the same number of layers).
* Luong "general" attention: score = h_t^T W_a h_s (W_a: Linear(H, H) without bias), softmax over the real
  source positions, context c_t, attentional vector tanh(W_c [c_t; h_t]) (Linear(2H, H) without bias), then
  dropout; that vector is fed to the next step and projected by ``generator`` = Linear(H, V_tgt).
* Init: every parameter uniform in [-0.1, 0.1] (QD's ``param_init 0.1``); the embeddings' padding rows are
  then zeroed (they never reach an output).

Parameter counts (``parameter_count``; formulas ``transformer_nmt_parameter_count`` and
``lstm_nmt_parameter_count``), vocabulary 50,000 on each side:

* LMA Transformer, 8 heads, ffn 2048, ReLU: teacher 6 x 512 **120,990,544**; students 3 x 256 **47,132,496**,
  3 x 128 **23,007,568**, 3 x 64 **11,387,472**. Another FFN activation adds, per FFN (2 x layers of them):
  PReLU 1, Swish 2048, APLU<K> 2 (K - 2) 2048, LMA<K> 2K; e.g. the 3 x 64 student with LMA8 has 11,387,568.
  Embeddings and generator make up 76,850,000 of the teacher's count (2 x 25.6 M + 25.65 M).
* QD LSTM, embeddings 500: teacher 2 x 500 **84,816,000**; 1-layer students 128 **57,209,808**, 256
  **64,861,136**, 512 **81,638,352**; WMT13's 1 x 500 "smaller" model 80,808,000 and 1 x 550 student
  84,296,300.

Constructors are registered as ``transformer_nmt`` and ``lstm_nmt`` (``(src_vocab, tgt_vocab, **kwargs)``,
JSON-serialisable kwargs) when this module is imported; ``compresslib.models`` does not import it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from compresslib.activations import LMA, create_activation
from compresslib.models.registry import register_model

__all__ = [
    "LSTM_CONFIGS",
    "LstmNMT",
    "Seq2Seq",
    "TRANSFORMER_CONFIGS",
    "TransformerNMT",
    "lstm_nmt_parameter_count",
    "parameter_count",
    "reorder_state",
    "transformer_nmt_parameter_count",
]

PAD_ID, BOS_ID, EOS_ID = 0, 2, 3
LAYER_NORM_EPS = 1e-6  # OpenNMT-py 0.x's LayerNorm

# The papers' configurations (kwargs on top of the vocab sizes).
TRANSFORMER_CONFIGS: dict[str, dict[str, Any]] = {  # LMA; students get the -stud_act FFN activation
    "teacher": {"layers": 6, "d_model": 512},
    "student0": {"layers": 3, "d_model": 256},
    "student1": {"layers": 3, "d_model": 128},
    "student2": {"layers": 3, "d_model": 64},
}
LSTM_CONFIGS: dict[str, dict[str, Any]] = {  # QD; embeddings 500 throughout
    "teacher": {"layers": 2, "hidden": 500},
    "student128": {"layers": 1, "hidden": 128},
    "student256": {"layers": 1, "hidden": 256},
    "student512": {"layers": 1, "hidden": 512},
    "wmt_smaller": {"layers": 1, "hidden": 500},
    "wmt_student": {"layers": 1, "hidden": 550},
}

State = dict[str, Any]


def parameter_count(model: nn.Module) -> int:
    """Number of parameters: ``sum(p.numel())``."""
    return sum(p.numel() for p in model.parameters())


def reorder_state(state: Any, index: torch.Tensor) -> Any:
    """Select rows ``index`` (dim 0) of every tensor in a (nested dict / list / tuple) decoder state."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: reorder_state(value, index) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_state(value, index) for value in state)
    return state  # ints and other per-batch constants


def _allow_empty_rows(mask: torch.Tensor) -> torch.Tensor:
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


# ---------------------------------------------------------------------------------------------------------------------
# Transformer


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
            mask = _allow_empty_rows(mask)
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
    """Closed form of ``parameter_count(TransformerNMT(...))`` (the head count does not change it)."""
    d = d_model
    attention = 4 * (d * d + d)
    norm = 2 * d
    feed_forward = norm + (d * ffn + ffn) + (ffn * d + d) + parameter_count(create_activation(activation, ffn))
    encoder_layer = norm + attention + feed_forward
    decoder_layer = 2 * (norm + attention) + feed_forward
    embeddings = (src_vocab + tgt_vocab) * d
    generator = d * tgt_vocab + tgt_vocab
    return embeddings + layers * (encoder_layer + decoder_layer) + 2 * norm + generator


# ---------------------------------------------------------------------------------------------------------------------
# LSTM with attention


class LstmNMT(Seq2Seq):
    """OpenNMT-py 0.x RNN encoder-decoder: LSTM, input feeding, Luong "general" attention; see the module docstring."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        layers: int = 2,
        hidden: int = 500,
        embedding: int = 500,
        dropout: float = 0.3,
        param_init: float = 0.1,  # uniform(-param_init, param_init) for every parameter; 0 keeps PyTorch's init
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> None:
        super().__init__(src_vocab, tgt_vocab, pad_id, bos_id, eos_id)
        self.layers, self.hidden = layers, hidden
        self.src_embedding = nn.Embedding(src_vocab, embedding, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embedding, padding_idx=pad_id)
        self.encoder = nn.LSTM(embedding, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.decoder_cells = nn.ModuleList(
            nn.LSTMCell(embedding + hidden if i == 0 else hidden, hidden) for i in range(layers))
        self.attn_in = nn.Linear(hidden, hidden, bias=False)  # W_a of the "general" score
        self.attn_out = nn.Linear(2 * hidden, hidden, bias=False)  # W_c over [context; h_t]
        self.dropout = nn.Dropout(dropout)
        self.generator = nn.Linear(hidden, tgt_vocab)
        if param_init > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -param_init, param_init)
            with torch.no_grad():
                self.src_embedding.weight[pad_id].zero_()
                self.tgt_embedding.weight[pad_id].zero_()

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> State:
        src_mask = self.source_mask(src, src_mask)
        lengths = src_mask.sum(dim=1).clamp_min(1).cpu()  # right padding: the real tokens come first
        packed = pack_padded_sequence(self.src_embedding(src), lengths, batch_first=True, enforce_sorted=False)
        output, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(output, batch_first=True, total_length=src.shape[1])
        return {
            "memory": memory,  # (B, S, H), zeros at padding
            "memory_mask": src_mask,  # (B, S)
            "h": h.transpose(0, 1),  # (B, layers, H): the decoder starts from the encoder's final state
            "c": c.transpose(0, 1),
            "input_feed": memory.new_zeros(src.shape[0], self.hidden),
        }

    def decode_step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        x = torch.cat([self.tgt_embedding(tokens), state["input_feed"]], dim=-1)
        hs, cs = [], []
        for i, cell in enumerate(self.decoder_cells):
            h, c = cell(x, (state["h"][:, i], state["c"][:, i]))
            hs.append(h)
            cs.append(c)
            x = self.dropout(h) if i + 1 < len(self.decoder_cells) else h
        memory, mask = state["memory"], _allow_empty_rows(state["memory_mask"])
        scores = torch.bmm(memory, self.attn_in(x).unsqueeze(2)).squeeze(2)  # (B, S): h_t^T W_a h_s
        align = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        context = torch.bmm(align.unsqueeze(1), memory).squeeze(1)
        attentional = self.dropout(torch.tanh(self.attn_out(torch.cat([context, x], dim=-1))))
        new_state = {**state, "h": torch.stack(hs, dim=1), "c": torch.stack(cs, dim=1), "input_feed": attentional}
        return self.generator(attentional), new_state

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        state = self.encode(src, src_mask)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, state = self.decode_step(tgt_in[:, t], state)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


def lstm_nmt_parameter_count(src_vocab: int, tgt_vocab: int, layers: int = 2, hidden: int = 500,
                             embedding: int = 500) -> int:
    """Closed form of ``parameter_count(LstmNMT(...))``."""
    h = hidden

    def lstm_layer(inputs: int) -> int:  # four gates: input and recurrent weights, two biases
        return 4 * h * (inputs + h) + 8 * h

    encoder = lstm_layer(embedding) + (layers - 1) * lstm_layer(h)
    decoder = lstm_layer(embedding + h) + (layers - 1) * lstm_layer(h)
    attention = h * h + 2 * h * h
    embeddings = (src_vocab + tgt_vocab) * embedding
    generator = h * tgt_vocab + tgt_vocab
    return embeddings + encoder + decoder + attention + generator


# ---------------------------------------------------------------------------------------------------------------------
# Registry


@register_model
def transformer_nmt(src_vocab: int, tgt_vocab: int, **kwargs: Any) -> TransformerNMT:
    """OpenNMT-py Transformer (LMA); defaults are LMA's teacher (6 x 512, 8 heads, ffn 2048)."""
    return TransformerNMT(src_vocab, tgt_vocab, **kwargs)


@register_model
def lstm_nmt(src_vocab: int, tgt_vocab: int, **kwargs: Any) -> LstmNMT:
    """OpenNMT-py LSTM seq2seq with attention (QD); defaults are QD's teacher (2 x 500, embeddings 500)."""
    return LstmNMT(src_vocab, tgt_vocab, **kwargs)
