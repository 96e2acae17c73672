"""OpenNMT-py's LSTM encoder-decoder with attention as QD trained it (Polino, Pascanu, Alistarh, ICLR 2018,
github.com/antspy/quantized_distillation ``onmt/``): teacher 2 layers x 500, students 1 layer x 128 / 256 / 512, word
embeddings 500 everywhere. The interface is ``compresslib.models.seq2seq.Seq2Seq``.

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

Parameter counts (``count_parameters``; the formula ``lstm_nmt_parameter_count``), vocabulary 50,000 on each side:

* QD LSTM, embeddings 500: teacher 2 x 500 **84,816,000**; 1-layer students 128 **57,209,808**, 256
  **64,861,136**, 512 **81,638,352**; WMT13's 1 x 500 "smaller" model 80,808,000 and 1 x 550 student
  84,296,300.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from compresslib.catalog import BOS_ID, EOS_ID, PAD_ID
from compresslib.models.registry import register_model
from compresslib.models.seq2seq import Seq2Seq, State, allow_empty_rows

__all__ = ["LSTM_CONFIGS", "LstmNMT", "lstm_nmt", "lstm_nmt_parameter_count"]

# QD's configurations (kwargs on top of the vocab sizes); embeddings 500 throughout
LSTM_CONFIGS: dict[str, dict[str, Any]] = {
    "teacher": {"layers": 2, "hidden": 500},
    "student128": {"layers": 1, "hidden": 128},
    "student256": {"layers": 1, "hidden": 256},
    "student512": {"layers": 1, "hidden": 512},
    "wmt_smaller": {"layers": 1, "hidden": 500},
    "wmt_student": {"layers": 1, "hidden": 550},
}


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
        memory, mask = state["memory"], allow_empty_rows(state["memory_mask"])
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
    """Closed form of ``count_parameters(LstmNMT(...))``."""
    h = hidden

    def lstm_layer(inputs: int) -> int:  # four gates: input and recurrent weights, two biases
        return 4 * h * (inputs + h) + 8 * h

    encoder = lstm_layer(embedding) + (layers - 1) * lstm_layer(h)
    decoder = lstm_layer(embedding + h) + (layers - 1) * lstm_layer(h)
    attention = h * h + 2 * h * h
    embeddings = (src_vocab + tgt_vocab) * embedding
    generator = h * tgt_vocab + tgt_vocab
    return embeddings + encoder + decoder + attention + generator


@register_model
def lstm_nmt(src_vocab: int, tgt_vocab: int, **kwargs: Any) -> LstmNMT:
    """OpenNMT-py LSTM seq2seq with attention (QD); defaults are QD's teacher (2 x 500, embeddings 500)."""
    return LstmNMT(src_vocab, tgt_vocab, **kwargs)
