"""compresslib.piecewise, the kernels behind LMA and APLU: the same numbers as the layers' straightforward formulas
(kept here as the reference) in float64 and float32, in every layout and chunking, one byte of state per element,
the same numbers under torch.compile, and NaN or infinite values that come out as NaN instead of an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compresslib import piecewise
from compresslib.activations import APLU, LMA
from compresslib.runs.lifecycle import TrainingDiverged
from compresslib.specs.training import build_spec
from compresslib.training.loop import train

LAYOUTS = ["nchw", "channels_last", "2d"]


def make_input(layout: str, generator: torch.Generator, dtype=torch.float64, channels: int = 4) -> torch.Tensor:
    shape = (5, channels) if layout == "2d" else (3, channels, 5, 6)
    x = (1.5 * torch.randn(shape, generator=generator, dtype=torch.float64) + 0.3).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def perturbed(module: nn.Module, generator: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def backward_with_weights(out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Backward of ``(out * w).sum()`` for a fixed random ``w``, so that every gradient is a weighted one."""
    weights = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.dtype)
    (out * weights).sum().backward()
    return weights


@pytest.fixture(params=["one piece", "many chunks"])
def chunking(request, monkeypatch):
    """The CPU path in one piece, and on one thread in chunks of at most 8 elements (two rows of a 2-D input; one
    sample of a 4-D map), the last one shorter."""
    if request.param == "one piece":
        yield
        return
    monkeypatch.setattr(piecewise, "CHUNK_ELEMENTS", 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------------
# the reference formulas (what compresslib.activations computed before the kernels)


def reference_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean()
    return mean, ((x - mean).square().sum() / (x.numel() - 1)).sqrt()


def reference_bins(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, num_bins: int) -> torch.Tensor:
    lower, width = mean - 3 * std, 6 * std / num_bins
    return ((x - lower) / width).floor().clamp(0, num_bins - 1).long()


def reference_lma(x: torch.Tensor, delta_slope: torch.Tensor, offset: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    num_bins = delta_slope.numel()
    base = torch.tensor([0.0] * (num_bins // 2) + [1.0] * (num_bins - num_bins // 2), dtype=delta_slope.dtype)
    return (base + delta_slope)[bins] * x + offset[bins]


def reference_aplu(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``relu(x) + sum_s a[c, s] relu(b[c, s] - x)`` with the channels along dim 1."""
    shape = (-1,) + (1,) * (x.dim() - 2)
    out = F.relu(x)
    for s in range(a.shape[1]):
        out = out + a[:, s].view(shape) * F.relu(b[:, s].view(shape) - x)
    return out


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


# ---------------------------------------------------------------------------------------------------------------------
# LMA


@pytest.mark.parametrize("layout", [*LAYOUTS, "1d"])
@pytest.mark.parametrize("num_bins", [2, 5, 8, 32])
@pytest.mark.parametrize("training", [True, False])
def test_lma_matches_reference_in_float64(layout, num_bins, training, chunking):
    gen = torch.Generator().manual_seed(num_bins)
    x = make_input("2d", gen).reshape(-1) if layout == "1d" else make_input(layout, gen)
    layer = perturbed(LMA(num_bins), gen).double().train(training)
    layer.running_mean.fill_(0.2)
    layer.running_std.fill_(1.3)
    x_ours, (x_ref, delta_slope, offset) = leaves(x)[0], leaves(x, layer.delta_slope, layer.offset)
    out = layer(x_ours)
    weights = backward_with_weights(out, gen)
    mean, std = reference_statistics(x) if training else (torch.tensor(0.2).double(), torch.tensor(1.3).double())
    expected = reference_lma(x_ref, delta_slope, offset, reference_bins(x, mean, std, num_bins))
    (expected * weights).sum().backward()
    assert out.shape == x.shape and out.stride() == x.stride()  # channels_last stays channels_last
    close = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, expected, **close)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **close)
    torch.testing.assert_close(layer.delta_slope.grad, delta_slope.grad, **close)
    torch.testing.assert_close(layer.offset.grad, offset.grad, **close)
    if training:
        assert layer.running_mean.item() == pytest.approx(0.99 * 0.2 + 0.01 * mean.item(), rel=1e-14)
        assert layer.running_std.item() == pytest.approx(0.99 * 1.3 + 0.01 * std.item(), rel=1e-14)


@pytest.mark.parametrize("training", [True, False])
def test_lma_matches_reference_in_float32_but_for_bins_at_edges(training, chunking):
    """float32 against the float64 reference: an element may land in the neighbouring bin only when it lies within
    float32 rounding of a bin edge; elsewhere the bins agree and so do outputs and gradients."""
    gen = torch.Generator().manual_seed(20)
    num_bins = 8
    layer = perturbed(LMA(num_bins), gen).train(training)
    layer.running_mean.fill_(0.2)
    layer.running_std.fill_(1.3)
    x64 = make_input("nchw", gen, channels=64)
    if training:
        mean, std = reference_statistics(x64)
    else:  # eval: put some elements exactly on the float64 edges, where float32 rounding decides
        mean, std = torch.tensor(0.2, dtype=torch.float64), torch.tensor(1.3, dtype=torch.float64)
        edges = mean - 3 * std + torch.arange(1, num_bins, dtype=torch.float64) * 6 * std / num_bins
        x64.view(-1)[: 4 * (num_bins - 1)] = edges.repeat(4)
    x = x64.float().requires_grad_()
    out = layer(x)
    weights = backward_with_weights(out, gen)

    slope = layer.base_slope.double() + layer.delta_slope.detach().double()
    ours = (x.grad.double() / weights.double()).unsqueeze(-1).sub(slope).abs().argmin(-1)  # each element's slope
    position = (x64 - (mean - 3 * std)) / (6 * std / num_bins)  # in bin widths: edge k at position k
    expected_bins = reference_bins(x64, mean, std, num_bins)
    at_edge = ((position - position.round()).abs() < 1e-5) & (position.round() >= 1) & (position.round() < num_bins)
    moved = ours != expected_bins
    assert not (moved & ~at_edge).any()
    assert ((ours - expected_bins).abs() <= 1).all()
    if not training:
        assert at_edge.sum() >= 4 * (num_bins - 1)

    x_ref, delta_slope, offset = leaves(x64, layer.delta_slope.double(), layer.offset.double())
    expected = reference_lma(x_ref, delta_slope, offset, ours)  # the reference in float64, with our bins
    (expected * weights.double()).sum().backward()
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), x_ref.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(layer.delta_slope.grad.double(), delta_slope.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(layer.offset.grad.double(), offset.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mean", [0.0, 3.0, 1e3])
@pytest.mark.parametrize("size", [7, 1024, 5000])
def test_batch_statistics_are_accurate(mean, size):
    """Row sums combined in float64 (and two passes where the mean dwarfs the spread): float32 statistics within
    a few float32 roundings of the exact ones, the tail after the last full row included."""
    gen = torch.Generator().manual_seed(size)
    x64 = torch.randn(size, generator=gen, dtype=torch.float64) * 2.0 + mean
    x = x64.float()
    got_mean, got_std = piecewise.batch_mean_std(x)
    exact_mean, exact_std = reference_statistics(x.double())
    assert got_mean.dtype == got_std.dtype == torch.float32
    assert got_mean.item() == pytest.approx(exact_mean.item(), rel=1e-6, abs=1e-6)
    assert got_std.item() == pytest.approx(exact_std.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# APLU


def aplu_with_ties(num_bins: int, x: torch.Tensor, generator: torch.Generator) -> APLU:
    """A perturbed APLU whose first hinge sits at exactly 0; ``x`` gets elements exactly at relu's kink (0) and, in
    its first two samples, exactly on each channel's first hinge."""
    layer = perturbed(APLU(x.shape[1], num_bins), generator).to(x.dtype)
    with torch.no_grad():
        layer.b[0, 0] = 0.0
        x[2:, ..., ::2] = 0.0
        x[:2] = layer.b[:, 0].view(-1, *[1] * (x.dim() - 2))
    return layer


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("num_bins", [3, 8, 32])
def test_aplu_matches_reference_in_float64(layout, num_bins, chunking):
    gen = torch.Generator().manual_seed(30 + num_bins)
    x = make_input(layout, gen)
    layer = aplu_with_ties(num_bins, x, gen)
    assert (x == 0).any() and (x[:, 0] == layer.b[0, 0]).any()
    x_ours, (x_ref, a, b) = leaves(x)[0], leaves(x, layer.a, layer.b)
    out = layer(x_ours)
    weights = backward_with_weights(out, gen)
    expected = reference_aplu(x_ref, a, b)
    (expected * weights).sum().backward()
    assert out.shape == x.shape and out.stride() == x.stride()
    close = dict(rtol=1e-12, atol=1e-12)  # ties at 0 and at b_s included: exactly the reference's relu'(0) = 0
    torch.testing.assert_close(out, expected, **close)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **close)
    torch.testing.assert_close(layer.a.grad, a.grad, **close)
    torch.testing.assert_close(layer.b.grad, b.grad, **close)


def test_aplu_per_channel_false_matches_reference_on_flat_rows(chunking):
    """The original's layout: the NCHW tensor viewed as (-1, C) rows, parameter j on flat index j modulo C."""
    gen = torch.Generator().manual_seed(40)
    for x in (make_input("nchw", gen, channels=3), make_input("channels_last", gen, channels=3)):
        layer = perturbed(APLU(3, 6, per_channel=False), gen).double()
        x_ours, (x_ref, a, b) = leaves(x)[0], leaves(x, layer.a, layer.b)
        out = layer(x_ours)
        weights = backward_with_weights(out, gen)
        expected = reference_aplu(x_ref.contiguous().view(-1, 3), a, b).view(x.shape)
        (expected * weights).sum().backward()
        close = dict(rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, expected, **close)
        torch.testing.assert_close(x_ours.grad, x_ref.grad, **close)
        torch.testing.assert_close(layer.a.grad, a.grad, **close)
        torch.testing.assert_close(layer.b.grad, b.grad, **close)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_aplu_matches_reference_in_float32(layout, chunking):
    gen = torch.Generator().manual_seed(50)
    x = make_input(layout, gen, dtype=torch.float32, channels=16)
    layer = aplu_with_ties(8, x, gen)
    x_ours, (x_ref, a, b) = leaves(x)[0], leaves(x.double(), layer.a.double(), layer.b.double())
    out = layer(x_ours)
    weights = backward_with_weights(out, gen)
    expected = reference_aplu(x_ref, a, b)
    (expected * weights.double()).sum().backward()
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x_ours.grad.double(), x_ref.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.a.grad.double(), a.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.b.grad.double(), b.grad, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# state kept for backward, torch.compile


@pytest.mark.parametrize("layer", [LMA(8), APLU(4, 8)], ids=["lma", "aplu"])
def test_one_byte_per_element_is_kept_for_backward(layer):
    x = torch.randn(6, 4, 5, 5, requires_grad=True)
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append((t.dtype, t.numel()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer.train()(x)
    per_element = [dtype for dtype, numel in saved if numel == x.numel()]
    assert sorted(map(str, per_element)) == ["torch.float32", "torch.uint8"]  # x itself, and the segment index


def test_compiled_forward_and_backward_match_eager():
    """Under torch.compile the slot sums are a one-hot reduction and the statistics torch.var_mean: same numbers."""
    gen = torch.Generator().manual_seed(60)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.ModuleList([APLU(4, 6), LMA(8), APLU(4, 5)]).train()

    def run(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
        y = layers[0](x)  # NCHW
        y = layers[1](y.contiguous(memory_format=torch.channels_last))
        return layers[2](y)  # channels_last

    eager, compiled = build(), build()
    perturbed(eager, gen)
    compiled.load_state_dict(eager.state_dict())
    x = make_input("nchw", gen, dtype=torch.float32)
    x_eager, x_compiled = leaves(x, x)
    out_eager = run(eager, x_eager)
    out_compiled = torch.compile(run, fullgraph=True)(compiled, x_compiled)
    weights = torch.randn(out_eager.shape, generator=gen)
    (out_eager * weights).sum().backward()
    (out_compiled * weights).sum().backward()
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_compiled.grad, x_eager.grad, rtol=1e-5, atol=1e-5)
    for (name, p_compiled), p_eager in zip(compiled.named_parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(compiled[1].running_std, eager[1].running_std)


# ---------------------------------------------------------------------------------------------------------------------
# NaN and infinity


@pytest.mark.parametrize("make_layer", [lambda: LMA(8).train(), lambda: LMA(8).eval(), lambda: APLU(4, 8)],
                         ids=["lma-train", "lma-eval", "aplu"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_input_gives_non_finite_output_not_an_exception(make_layer, bad):
    layer = make_layer()
    x = torch.randn(3, 4, 5, 5)
    x[1, 2, 3, 4] = bad
    x.requires_grad_()
    out = layer(x)
    assert not torch.isfinite(out[1, 2, 3, 4])
    out.sum().backward()
    assert not torch.isfinite(torch.cat([p.grad.view(-1) for p in layer.parameters()])).all()


def tiny_model(activation: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), activation, nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.mark.parametrize("make_layer", [lambda: LMA(4), lambda: APLU(4, 4)], ids=["lma", "aplu"])
def test_a_nan_input_or_parameter_makes_the_loss_non_finite(make_layer):
    images, labels = torch.randn(8, 3, 8, 8), torch.arange(8)
    poisoned = images.clone()
    poisoned[3, 0, 2, 2] = float("nan")
    model = tiny_model(make_layer()).train()
    loss = F.cross_entropy(model(poisoned), labels)
    loss.backward()
    assert not torch.isfinite(loss)
    model = tiny_model(make_layer()).train()
    assert torch.isfinite(F.cross_entropy(model(images), labels))
    with torch.no_grad():
        next(model[1].parameters())[0].fill_(float("nan"))
    assert not torch.isfinite(F.cross_entropy(model(images), labels))


@pytest.mark.parametrize("activation", ["lma4", "aplu4"])
def test_training_that_blows_up_reports_training_diverged(activation, tiny_dataset: Path, tmp_path: Path):
    """An absurd learning rate sends NaNs into the activations; the loop must stop with TrainingDiverged."""
    spec = build_spec({"dataset": "synthetic", "model": "demo_conv_student1", "activation": activation, "epochs": 1,
                       "batch_size": 32, "lr": 1e12, "momentum": 0.0, "weight_decay": 0.0, "threads": 1})
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1"):
        train(spec, tiny_dataset, tmp_path)
