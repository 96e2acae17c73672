"""Translation models and decoding: padding invariance, causality, FFN activations, counts, beam vs greedy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activations import APLU, LMA, PReLU, Swish
from compresslib.models import count_parameters, create_model, lstm_nmt, transformer_nmt
from compresslib.models.lstm_nmt import LSTM_CONFIGS, LstmNMT, lstm_nmt_parameter_count
from compresslib.models.seq2seq import Seq2Seq
from compresslib.models.transformer_nmt import TRANSFORMER_CONFIGS, TransformerNMT, transformer_nmt_parameter_count
from compresslib.translation.decoding import beam_search, greedy_decode

PAD, BOS, EOS = 0, 2, 3
SRC_VOCAB, TGT_VOCAB = 23, 19

# Vocabulary 50,000 per side, ReLU; the module docstring quotes these.
COUNTS_50K = {
    ("transformer", "teacher"): 120_990_544,
    ("transformer", "student0"): 47_132_496,
    ("transformer", "student1"): 23_007_568,
    ("transformer", "student2"): 11_387_472,
    ("lstm", "teacher"): 84_816_000,
    ("lstm", "student128"): 57_209_808,
    ("lstm", "student256"): 64_861_136,
    ("lstm", "student512"): 81_638_352,
    ("lstm", "wmt_smaller"): 80_808_000,
    ("lstm", "wmt_student"): 84_296_300,
}


@pytest.fixture(scope="module", autouse=True)
def _threads(one_thread):
    yield


def tiny_transformer(activation: str = "relu", dropout: float = 0.0, **kwargs) -> TransformerNMT:
    torch.manual_seed(0)
    options = dict(layers=2, d_model=16, heads=2, ffn=24, dropout=dropout, activation=activation) | kwargs
    return TransformerNMT(SRC_VOCAB, TGT_VOCAB, **options)


def tiny_lstm(dropout: float = 0.0) -> LstmNMT:
    torch.manual_seed(0)
    return LstmNMT(SRC_VOCAB, TGT_VOCAB, layers=2, hidden=12, embedding=10, dropout=dropout)


MODELS = {"transformer": tiny_transformer, "lstm": tiny_lstm}


def sentences(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded pair of sentences: src (2, 6) with lengths 6 and 3, tgt_in/tgt_out (2, 5) with lengths 5 and 2."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (2, 6), generator=g)
    src[1, 3:] = PAD
    body = torch.randint(4, TGT_VOCAB, (2, 5), generator=g)
    tgt_in = torch.cat([torch.full((2, 1), BOS), body[:, :4]], dim=1)
    tgt_out = body.clone()
    tgt_out[:, -1] = EOS
    tgt_in[1, 2:] = PAD
    tgt_out[1, 1] = EOS
    tgt_out[1, 2:] = PAD
    return src, tgt_in, tgt_out, torch.tensor([[6, 5], [3, 2]])


@pytest.mark.parametrize("family", sorted(MODELS))
def test_padding_never_changes_an_output(family: str):
    model = MODELS[family]().eval()
    src, tgt_in, tgt_out, lengths = sentences()
    with torch.no_grad():
        batch_logits = model(src, tgt_in)
        assert batch_logits.shape == (2, 5, TGT_VOCAB)
        for b in range(2):
            s, t = lengths[b].tolist()
            alone = model(src[b : b + 1, :s], tgt_in[b : b + 1, :t])
            torch.testing.assert_close(batch_logits[b, :t], alone[0], atol=1e-5, rtol=1e-5)
        # extra padding columns on both sides change neither the logits nor the loss
        more_src = F.pad(src, (0, 3), value=PAD)
        more_in, more_out = F.pad(tgt_in, (0, 2), value=PAD), F.pad(tgt_out, (0, 2), value=PAD)
        more_logits = model(more_src, more_in)
        torch.testing.assert_close(more_logits[:, :5][tgt_in.ne(PAD)], batch_logits[tgt_in.ne(PAD)],
                                   atol=1e-5, rtol=1e-5)
        loss = F.cross_entropy(batch_logits.transpose(1, 2), tgt_out, ignore_index=PAD)
        more_loss = F.cross_entropy(more_logits.transpose(1, 2), more_out, ignore_index=PAD)
        torch.testing.assert_close(more_loss, loss, atol=1e-5, rtol=1e-5)


def test_lma_statistics_ignore_padding_in_training():
    """In train mode LMA segments with batch statistics; only real tokens feed them."""
    model = tiny_transformer("lma8").train()  # dropout 0
    src, tgt_in, _, _ = sentences()
    with torch.no_grad():
        logits = model(src, tgt_in)
        more = model(F.pad(src, (0, 3), value=PAD), F.pad(tgt_in, (0, 2), value=PAD))
    torch.testing.assert_close(more[:, :5][tgt_in.ne(PAD)], logits[tgt_in.ne(PAD)], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("tag", "layer_type", "params"), [
    ("relu", nn.ReLU, 0), ("prelu", PReLU, 1), ("swish", Swish, 24), ("aplu8", APLU, 2 * 6 * 24), ("lma8", LMA, 16)])
def test_ffn_activation_comes_from_the_registry(tag: str, layer_type: type, params: int):
    model = tiny_transformer(tag, dropout=0.1).train()
    ffns = [layer.feed_forward for layer in [*model.encoder_layers, *model.decoder_layers]]
    for ffn in ffns:
        assert type(ffn.activation) is layer_type
        assert count_parameters(ffn.activation) == params
        if hasattr(ffn.activation, "num_features"):
            assert ffn.activation.num_features == 24  # the FFN hidden size, not the head count
    src, tgt_in, tgt_out, _ = sentences()
    loss = F.cross_entropy(model(src, tgt_in).transpose(1, 2), tgt_out, ignore_index=PAD)
    loss.backward()
    assert torch.isfinite(loss)
    for ffn in ffns:
        for p in ffn.activation.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
    assert model.generator.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", sorted(MODELS))
def test_causal_masking(family: str):
    model = MODELS[family]().eval()
    src, tgt_in, _, _ = sentences()
    changed = tgt_in.clone()
    changed[0, 3] = (changed[0, 3] + 1 - 4) % (TGT_VOCAB - 4) + 4
    with torch.no_grad():
        before, after = model(src, tgt_in), model(src, changed)
    torch.testing.assert_close(after[0, :3], before[0, :3], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after[0, 3:], before[0, 3:])
    torch.testing.assert_close(after[1], before[1], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_incremental_decoding_matches_teacher_forcing(family: str):
    model = MODELS[family]().eval()
    src, tgt_in, _, _ = sentences()
    tgt_in = tgt_in[:1].expand(2, -1)  # no target padding: every column is real for both sentences
    with torch.no_grad():
        full = model(src, tgt_in)
        state = model.encode(src)
        steps = []
        for t in range(tgt_in.shape[1]):
            logits, state = model.decode_step(tgt_in[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Decoding


class TwoStepToy(Seq2Seq):
    """A fixed next-token distribution depending only on the previous token (vocab: pad unk bos eos A B):
    after bos A 0.55 / B 0.45; after A eos 0.4, A 0.3, B 0.3; after B eos 0.9. Greedy takes A then eos
    (p = 0.22); the best sequence is B eos (p = 0.405)."""

    A, B = 4, 5

    def __init__(self) -> None:
        super().__init__(src_vocab=6, tgt_vocab=6)
        table = torch.full((6, 6), 1e-6)
        table[BOS, [self.A, self.B]] = torch.tensor([0.55, 0.45])
        table[self.A, [EOS, self.A, self.B]] = torch.tensor([0.4, 0.3, 0.3])
        table[self.B, [EOS, self.A, self.B]] = torch.tensor([0.9, 0.05, 0.05])
        table[[PAD, 1, EOS], EOS] = 1.0
        self.register_buffer("log_table", (table / table.sum(1, keepdim=True)).log())

    def encode(self, src, src_mask=None):
        return {"batch": torch.zeros(src.shape[0])}

    def decode_step(self, tokens, state):
        return self.log_table[tokens], state


def test_beam_search_finds_the_more_likely_sequence():
    toy, src = TwoStepToy(), torch.ones(3, 2, dtype=torch.long)
    assert greedy_decode(toy, src, max_length=10) == [[TwoStepToy.A]] * 3
    assert beam_search(toy, src, beam_size=2, max_length=10) == [[TwoStepToy.B]] * 3
    assert beam_search(toy, src, beam_size=1, max_length=10) == greedy_decode(toy, src, max_length=10)
    assert beam_search(toy, src, beam_size=2, max_length=1) == [[TwoStepToy.A]] * 3  # cut: best one-token prefix


@pytest.mark.parametrize("family", sorted(MODELS))
def test_beam_one_is_greedy_and_outputs_are_clean(family: str):
    model = MODELS[family]().eval()
    src, _, _, _ = sentences(seed=5)
    for max_length in (1, 4, 9):
        greedy = greedy_decode(model, src, max_length=max_length)
        assert beam_search(model, src, beam_size=1, max_length=max_length) == greedy
        for beam_size in (2, 3):
            for penalty in (0.0, 1.0):
                out = beam_search(model, src, beam_size=beam_size, max_length=max_length, length_penalty=penalty)
                assert len(out) == 2
                for tokens in out:
                    assert len(tokens) <= max_length
                    assert not {PAD, BOS, EOS} & set(tokens)
                    assert all(0 <= token < TGT_VOCAB for token in tokens)
    # a sentence's output does not depend on the others in the batch
    assert beam_search(model, src[1:, :3], beam_size=3, max_length=6) == beam_search(model, src, beam_size=3,
                                                                                      max_length=6)[1:]


def _sequence_log_prob(model: Seq2Seq, src: torch.Tensor, tokens: list[int], max_length: int) -> float:
    tgt = torch.tensor([[BOS, *tokens]])
    with torch.no_grad():
        log_probs = model(src, tgt).log_softmax(-1)[0]
    targets = tokens + ([EOS] if len(tokens) < max_length else [])
    return sum(log_probs[t, token].item() for t, token in enumerate(targets))


def test_beam_search_is_at_least_as_likely_as_greedy():
    model = tiny_transformer().eval()
    src, _, _, _ = sentences(seed=7)
    for b in range(2):
        one = src[b : b + 1]
        greedy = greedy_decode(model, one, max_length=8)[0]
        beam = beam_search(model, one, beam_size=4, max_length=8)[0]
        assert _sequence_log_prob(model, one, beam, 8) >= _sequence_log_prob(model, one, greedy, 8) - 1e-5


# ---------------------------------------------------------------------------------------------------------------------
# Parameter counts and registry


@pytest.mark.parametrize("activation", ["relu", "prelu", "swish", "aplu5", "lma4"])
def test_transformer_parameter_formula(activation: str):
    model = TransformerNMT(31, 17, layers=2, d_model=16, heads=4, ffn=20, activation=activation)
    assert count_parameters(model) == transformer_nmt_parameter_count(31, 17, 2, 16, 20, activation)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_lstm_parameter_formula(layers: int):
    model = LstmNMT(31, 17, layers=layers, hidden=12, embedding=9)
    assert count_parameters(model) == lstm_nmt_parameter_count(31, 17, layers, 12, 9)
    assert all(p.abs().max() <= 0.1 for p in model.parameters())  # uniform init +-0.1
    assert model.src_embedding.weight[PAD].abs().sum() == 0


def test_50k_counts_match_the_formula_and_the_docstring():
    for (family, name), expected in COUNTS_50K.items():
        if family == "transformer":
            count = transformer_nmt_parameter_count(50_000, 50_000, **TRANSFORMER_CONFIGS[name])
            doc = transformer_nmt.__doc__
        else:
            count = lstm_nmt_parameter_count(50_000, 50_000, **LSTM_CONFIGS[name])
            doc = lstm_nmt.__doc__
        assert count == expected, (family, name)
        assert f"{expected:,}" in doc
    lma_student = transformer_nmt_parameter_count(50_000, 50_000, 3, 64, activation="lma8")
    assert lma_student == COUNTS_50K[("transformer", "student2")] + 6 * 16
    assert f"{lma_student:,}" in transformer_nmt.__doc__


def test_registered_constructors():
    model = create_model("transformer_nmt", src_vocab=11, tgt_vocab=13, layers=1, d_model=8, heads=2, ffn=12,
                         activation="swish")
    assert isinstance(model, TransformerNMT) and model.generator.out_features == 13
    model = create_model("lstm_nmt", src_vocab=11, tgt_vocab=13, layers=1, hidden=8, embedding=6)
    assert isinstance(model, LstmNMT) and model.generator.out_features == 13


# ---------------------------------------------------------------------------------------------------------------------
# Training sanity


def test_tiny_transformer_learns_a_copy_task():
    torch.manual_seed(0)
    model = TransformerNMT(12, 12, layers=1, d_model=32, heads=2, ffn=64, dropout=0.0)
    data = [[4, 5, 6, 7], [8, 9, 10], [11, 4, 9, 6, 5], [7, 7, 8]]
    width = max(map(len, data))
    src = torch.tensor([s + [PAD] * (width - len(s)) for s in data])
    tgt_in = torch.tensor([[BOS] + s + [PAD] * (width - len(s)) for s in data])
    tgt_out = torch.tensor([s + [EOS] + [PAD] * (width - len(s)) for s in data])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(src, tgt_in).transpose(1, 2), tgt_out, ignore_index=PAD)
        loss.backward()
        optimizer.step()
    model.eval()
    assert greedy_decode(model, src, max_length=10) == data
    assert beam_search(model, src, beam_size=3, max_length=10) == data
    assert math.isfinite(loss.item())
