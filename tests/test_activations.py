"""Unit tests for compresslib.activations and compresslib.activation_tags: tag parsing, gradients, statistics,
state_dict, per-channel semantics."""

from __future__ import annotations

import functools
import io
import math

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

from compresslib.activation_tags import ACTIVATION_FAMILIES, SEGMENT_RANGE, parse_activation
from compresslib.activations import ACTIVATION_TYPES, APLU, LMA, PReLU, Swish, create_activation

TAGS = ("relu", "prelu", "swish", "aplu8", "lma8")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb_parameters(module: nn.Module, generator: torch.Generator, scale: float = 0.3) -> None:
    """Move every parameter off its initial value, so the tests see a non-trivial function."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def lma_bin_coordinate(x: torch.Tensor, mean: float, std: float, num_bins: int) -> torch.Tensor:
    """Position of each element in bin units: bin k covers [k, k + 1); the band is [0, K]."""
    return (x - mean + 3 * std) / (6 * std / num_bins)


def inputs_between_edges(mean: float, std: float, num_bins: int, shape, generator) -> torch.Tensor:
    """float64 inputs at least 0.2 bin widths from every bin edge, some of them outside the +-3 sigma band."""
    n = math.prod(shape)
    bins = torch.randint(-2, num_bins + 2, (n,), generator=generator).double()
    frac = 0.2 + 0.6 * torch.rand(n, generator=generator, dtype=torch.float64)
    width = 6 * std / num_bins
    return (mean - 3 * std + (bins + frac) * width).reshape(shape)


def train_inputs_between_edges(num_bins: int, shape, generator, margin: float = 0.02) -> torch.Tensor:
    """float64 inputs whose own (batch) statistics put every element at least ``margin`` bins from an edge."""
    for _ in range(10_000):
        x = 1.5 * torch.randn(shape, generator=generator, dtype=torch.float64) + 0.3
        t = lma_bin_coordinate(x, x.mean().item(), x.std().item(), num_bins)
        frac = t - t.floor()
        inside = (t > -margin) & (t < num_bins + margin)
        if not (inside & ((frac < margin) | (frac > 1 - margin))).any():
            return x
    raise AssertionError("no input away from the bin edges found")


def assert_gradcheck(module: nn.Module, x: torch.Tensor) -> None:
    """gradcheck w.r.t. the input and every parameter of ``module`` (float64)."""
    names = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in module.parameters())

    def call(inp, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (inp,))

    assert gradcheck(call, (x.detach().clone().requires_grad_(), *params))


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, persistent or not."""
    return {name: t.detach().clone() for name, t in [*module.named_parameters(), *module.named_buffers()]}


# ---------------------------------------------------------------------------------------------------------------------
# parse_activation


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("relu", ("relu", None)),
        ("prelu", ("prelu", None)),
        ("swish", ("swish", None)),
        ("lma", ("lma", 8)),
        ("aplu", ("aplu", 8)),
        ("lma8", ("lma", 8)),
        ("lma2", ("lma", 2)),
        ("lma32", ("lma", 32)),
        ("aplu12", ("aplu", 12)),
        ("aplu3", ("aplu", 3)),
        ("ReLU", ("relu", None)),
        ("PReLU", ("prelu", None)),
        ("LMA4", ("lma", 4)),
        ("Aplu6", ("aplu", 6)),
    ],
)
def test_parse_activation_valid(tag, expected):
    assert parse_activation(tag) == expected


def test_families_and_ranges():
    assert ACTIVATION_FAMILIES == ("relu", "prelu", "swish", "aplu", "lma")
    assert SEGMENT_RANGE == {"aplu": (3, 32), "lma": (2, 32)}


@pytest.mark.parametrize("tag", ["gelu", "", "relu8", "swish4", "lma-8", "lma 8", "lma08", "lma8x", "maxout"])
def test_parse_activation_unknown(tag):
    with pytest.raises(ValueError) as err:
        parse_activation(tag)
    message = str(err.value)
    assert repr(tag) in message
    assert "relu, prelu, swish, lma<K> (K in 2..32), aplu<K> (K in 3..32)" in message


@pytest.mark.parametrize(
    "tag, family, lo, hi",
    [("lma1", "lma", 2, 32), ("lma33", "lma", 2, 32), ("lma0", "lma", 2, 32), ("aplu2", "aplu", 3, 32),
     ("APLU64", "aplu", 3, 32)],
)
def test_parse_activation_out_of_range(tag, family, lo, hi):
    with pytest.raises(ValueError) as err:
        parse_activation(tag)
    message = str(err.value)
    assert repr(tag) in message and family in message and f"{lo}..{hi}" in message


def test_parse_activation_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_activation(8)


# ---------------------------------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("tag", ["relu", "prelu", "swish", "aplu3", "aplu8"])
def test_gradcheck_baselines(tag):
    gen = torch.Generator().manual_seed(0)
    module = create_activation(tag, 3).double()
    perturb_parameters(module, gen)
    x = torch.randn(2, 3, 2, 2, generator=gen, dtype=torch.float64)
    x = torch.where(x.abs() < 0.05, x + 0.1, x)  # keep relu / prelu away from their kink at 0
    assert_gradcheck(module, x)
    assert_gradcheck(module, torch.randn(4, 3, generator=gen, dtype=torch.float64) + 0.01)  # (N, C) input


@pytest.mark.parametrize("num_bins", [2, 5, 8])
def test_gradcheck_lma_eval(num_bins):
    gen = torch.Generator().manual_seed(1)
    module = LMA(num_bins).double().eval()
    perturb_parameters(module, gen)
    module.running_mean.fill_(0.3)
    module.running_std.fill_(1.7)
    x = inputs_between_edges(0.3, 1.7, num_bins, (2, 3, 2, 2), gen)
    assert_gradcheck(module, x)


@pytest.mark.parametrize("num_bins", [2, 5, 8])
def test_gradcheck_lma_train(num_bins):
    gen = torch.Generator().manual_seed(2)
    module = LMA(num_bins).double().train()
    perturb_parameters(module, gen)
    x = train_inputs_between_edges(num_bins, (2, 3, 2, 2), gen)
    assert_gradcheck(module, x)


def test_lma_gradient_values():
    """d y / d x is the bin's slope, d y / d offset_k counts bin k, d y / d delta_slope_k sums x over bin k."""
    module = LMA(4).eval()
    module.running_mean.fill_(0.0)
    module.running_std.fill_(1.0)  # band [-3, 3], bins of width 1.5: edges -1.5, 0, 1.5
    with torch.no_grad():
        module.delta_slope.copy_(torch.tensor([0.5, -0.25, 0.125, 2.0]))
    x = torch.tensor([-5.0, -2.0, -1.0, 0.5, 1.0, 2.0, 7.0], requires_grad=True)
    module(x).sum().backward()
    slope = torch.tensor([0.5, -0.25, 1.125, 3.0])
    bins = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    torch.testing.assert_close(x.grad, slope[bins])
    torch.testing.assert_close(module.offset.grad, torch.tensor([2.0, 1.0, 2.0, 2.0]))
    torch.testing.assert_close(module.delta_slope.grad, torch.tensor([-7.0, -1.0, 1.5, 9.0]))


# ---------------------------------------------------------------------------------------------------------------------
# statistics and eval purity


@pytest.mark.parametrize("tag", TAGS)
def test_eval_forward_changes_nothing(tag):
    gen = torch.Generator().manual_seed(3)
    module = create_activation(tag, 4)
    module.train()
    module(torch.randn(8, 4, 3, 3, generator=gen))  # move LMA's statistics off their initial values
    module.eval()
    before = state_snapshot(module)
    with torch.no_grad():
        module(3 * torch.randn(8, 4, 3, 3, generator=gen) + 2)
    module(torch.randn(8, 4, generator=gen, requires_grad=True)).sum().backward()
    after = state_snapshot(module)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_lma_train_forward_follows_momentum_rule():
    gen = torch.Generator().manual_seed(4)
    module = LMA(8).train()
    assert module.running_mean.item() == 0.0 and module.running_std.item() == 1.0
    expected_mean, expected_std = 0.0, 1.0
    for _ in range(3):
        x = 2.5 * torch.randn(16, 5, 4, 4, generator=gen, dtype=torch.float64).float() - 0.7
        module(x)
        mu, sigma = x.double().mean().item(), x.double().std().item()  # unbiased std over the whole tensor
        expected_mean = 0.99 * expected_mean + 0.01 * mu
        expected_std = 0.99 * expected_std + 0.01 * sigma
        assert module.running_mean.item() == pytest.approx(expected_mean, rel=1e-6, abs=1e-7)
        assert module.running_std.item() == pytest.approx(expected_std, rel=1e-6)
    assert module.running_mean.item() != 0.0


def test_lma_momentum_argument():
    x = torch.arange(10.0)
    module = LMA(4, momentum=0.25).train()
    module(x)
    assert module.running_mean.item() == pytest.approx(0.25 * 4.5)
    assert module.running_std.item() == pytest.approx(0.75 + 0.25 * x.std().item())


def test_lma_train_segments_with_batch_statistics():
    """Train mode bins by the batch's own mean/std, whatever the running statistics hold."""
    gen = torch.Generator().manual_seed(5)
    x = 4.0 * torch.randn(6, 3, 5, 5, generator=gen) + 10.0
    fresh, shifted = LMA(8).train(), LMA(8).train()
    shifted.running_mean.fill_(-100.0)
    shifted.running_std.fill_(0.01)
    torch.testing.assert_close(fresh(x), shifted(x), rtol=0, atol=0)
    torch.testing.assert_close(fresh(x), torch.where(x >= x.mean(), x, 0.0))  # the initial hinge at the batch mean


def test_lma_update_stats_in_eval_reproduces_original_leak():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 3, 4, 4, generator=gen) + 1.0
    leaky = LMA(8, update_stats_in_eval=True).eval()
    expected_bins_from = LMA(8).eval()  # segments with the statistics from before the update
    out = leaky(x)
    torch.testing.assert_close(out, expected_bins_from(x))
    assert leaky.running_mean.item() == pytest.approx(0.01 * x.mean().item())
    assert leaky.running_std.item() == pytest.approx(0.99 + 0.01 * x.std().item())


def test_lma_initial_function_is_relu_hinged_at_running_mean():
    module = LMA(8).eval()
    assert num_params(module) == 16
    assert [name for name, _ in module.named_parameters()] == ["delta_slope", "offset"]
    m, s = 0.5, 2.0
    module.running_mean.fill_(m)
    module.running_std.fill_(s)
    above = torch.linspace(m + 0.01, m + 3 * s - 0.01, 101)  # upper-half bins
    below = torch.linspace(m - 3 * s + 0.01, m - 0.01, 101)  # lower-half bins, inside the band
    torch.testing.assert_close(module(above), above, rtol=0, atol=0)
    torch.testing.assert_close(module(below), torch.zeros_like(below), rtol=0, atol=0)
    outside = torch.tensor([m - 3 * s - 5.0, m + 3 * s + 5.0])  # outside the band: the end bins
    torch.testing.assert_close(module(outside), torch.tensor([0.0, m + 3 * s + 5.0]))


@pytest.mark.parametrize("num_bins", list(range(2, 33)))
def test_lma_parameter_count_and_base_slope(num_bins):
    module = LMA(num_bins)
    assert num_params(module) == 2 * num_bins
    assert module.base_slope.tolist() == [0.0] * (num_bins // 2) + [1.0] * (num_bins - num_bins // 2)
    assert "base_slope" not in module.state_dict()


def test_lma_odd_bins_hinge_at_edge_of_bin_k_half():
    module = LMA(5).eval()  # edges at -3 + 1.2 k; slope 1 from bin 2 on, i.e. from -0.6
    x = torch.tensor([-0.61, -0.59, 0.0])
    torch.testing.assert_close(module(x), torch.tensor([0.0, -0.59, 0.0]))


def test_lma_constant_input_is_finite():
    module = LMA(8).train()
    x = torch.full((4, 3, 2, 2), 3.0)
    out = module(x)
    assert torch.isfinite(out).all() and torch.isfinite(module.running_std).all()  # sigma clamped to eps
    module.eval()
    module.running_std.zero_()
    assert torch.isfinite(module(torch.randn(5, 3))).all()


def test_lma_needs_two_values_in_training():
    with pytest.raises(ValueError, match="more than one value"):
        LMA(8).train()(torch.ones(1, 1))
    LMA(8).eval()(torch.ones(1, 1))  # eval needs no batch statistics


def test_lma_rejects_bad_arguments():
    with pytest.raises(ValueError, match="2..32"):
        LMA(1)
    with pytest.raises(ValueError, match="momentum"):
        LMA(8, momentum=1.5)
    with pytest.raises(ValueError, match="3..32"):
        APLU(4, num_bins=2)


# ---------------------------------------------------------------------------------------------------------------------
# state_dict


@pytest.mark.parametrize("tag", TAGS)
def test_state_dict_round_trip(tag):
    gen = torch.Generator().manual_seed(7)
    module = create_activation(tag, 4).train()
    perturb_parameters(module, gen)
    for _ in range(3):
        module(2.0 * torch.randn(8, 4, 3, 3, generator=gen) + 1.0)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = create_activation(tag, 4)
    fresh.load_state_dict(saved)  # strict
    module.eval()
    fresh.eval()
    x = 2.0 * torch.randn(8, 4, 3, 3, generator=gen) + 1.0
    assert torch.equal(module(x), fresh(x))
    if tag.startswith("lma"):
        assert set(saved) == {"delta_slope", "offset", "running_mean", "running_std"}
        assert torch.equal(fresh.running_mean, saved["running_mean"])
        assert torch.equal(fresh.running_std, saved["running_std"])
        assert saved["running_mean"].item() != 0.0 and saved["running_std"].item() != 1.0


# ---------------------------------------------------------------------------------------------------------------------
# per-channel semantics and parameter counts


def swish_reference(x, beta):
    return torch.stack([x[:, c] * torch.sigmoid(beta[c] * x[:, c]) for c in range(x.shape[1])], dim=1)


def aplu_reference(x, a, b):
    out = []
    for c in range(x.shape[1]):
        xc = x[:, c]
        out.append(torch.relu(xc) + sum(a[c, s] * torch.relu(-xc + b[c, s]) for s in range(a.shape[1])))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 5, 6)])
def test_swish_and_aplu_act_per_channel(shape):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(shape, generator=gen)
    swish = Swish(4)
    with torch.no_grad():
        swish.beta.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0]))
    aplu = APLU(4, num_bins=6)
    torch.testing.assert_close(swish(x), swish_reference(x, swish.beta.detach()))
    torch.testing.assert_close(aplu(x), aplu_reference(x, aplu.a.detach(), aplu.b.detach()))


@pytest.mark.parametrize("tag", TAGS)
def test_channels_last_matches_contiguous(tag):
    gen = torch.Generator().manual_seed(9)
    module = create_activation(tag, 4).eval()
    perturb_parameters(module, gen)
    x = torch.randn(3, 4, 5, 6, generator=gen)
    x_cl = x.to(memory_format=torch.channels_last)
    out, out_cl = module(x), module(x_cl)
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out)


def test_per_channel_false_reproduces_original_flat_layout():
    """The original viewed NCHW maps as (-1, C): parameter j acts on flat index j modulo C."""
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(2, 3, 4, 5, generator=gen)
    flat = x.reshape(-1)
    j = torch.arange(flat.numel()) % 3
    swish = Swish(3, per_channel=False)
    with torch.no_grad():
        swish.beta.copy_(torch.tensor([0.5, 2.0, -1.0]))
    torch.testing.assert_close(swish(x), (flat * torch.sigmoid(swish.beta.detach()[j] * flat)).view_as(x))
    aplu = APLU(3, num_bins=5, per_channel=False)
    a, b = aplu.a.detach(), aplu.b.detach()
    expected = torch.relu(flat) + sum(a[j, s] * torch.relu(-flat + b[j, s]) for s in range(3))
    torch.testing.assert_close(aplu(x), expected.view_as(x))
    x2 = torch.randn(6, 3, generator=gen)  # on (N, C) the two layouts agree
    for flat_module, channel_module in [(swish, Swish(3)), (aplu, APLU(3, num_bins=5))]:
        channel_module.load_state_dict(flat_module.state_dict())
        torch.testing.assert_close(flat_module(x2), channel_module(x2))


@pytest.mark.parametrize("channels", [1, 3, 75])
def test_parameter_counts(channels):
    assert num_params(create_activation("relu", channels)) == 0
    assert num_params(create_activation("prelu", channels)) == 1
    assert num_params(create_activation("swish", channels)) == channels
    for k in (3, 8, 12, 32):
        assert num_params(create_activation(f"aplu{k}", channels)) == 2 * (k - 2) * channels
    for k in (2, 8, 32):
        assert num_params(create_activation(f"lma{k}", channels)) == 2 * k


def test_extra_parameters_of_the_cifar10_student_spec0():
    widths = [75, 50, 50, 25, 500]  # conv widths and the hidden linear layer: one activation after each
    extra = {tag: sum(num_params(create_activation(tag, w)) for w in widths) for tag in TAGS}
    assert extra == {"relu": 0, "prelu": 5, "swish": 700, "aplu8": 8400, "lma8": 80}


def test_prelu_is_one_scalar_at_a_quarter():
    module = create_activation("prelu", 7)
    assert isinstance(module, nn.PReLU) and module.weight.tolist() == [0.25]
    x = torch.tensor([-2.0, -0.5, 0.0, 3.0])
    torch.testing.assert_close(module(x), torch.relu(x) - 0.25 * torch.relu(-x))


def test_aplu_initialisation_statistics():
    torch.manual_seed(11)
    module = APLU(2000, num_bins=8)
    a, b = module.a.detach(), module.b.detach()
    assert a.shape == b.shape == (2000, 6)
    assert a.min() >= -0.5 and a.max() <= 0.5
    assert abs(a.mean().item()) < 0.01 and abs(a.var().item() - 1 / 12) < 0.005
    assert abs(b.mean().item()) < 0.01 and abs(b.std().item() - 0.5) < 0.01
    assert Swish(5).beta.tolist() == [1.0] * 5


def test_channel_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        Swish(4)(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        APLU(4)(torch.randn(8))


# ---------------------------------------------------------------------------------------------------------------------
# create_activation


@pytest.mark.parametrize("tag", TAGS)
def test_create_activation_types(tag):
    module = create_activation(tag.upper(), 6)
    assert isinstance(module, ACTIVATION_TYPES)
    assert create_activation(tag, 6) is not create_activation(tag, 6)


def test_create_activation_builds_the_right_layers():
    assert type(create_activation("relu", 3)) is nn.ReLU and not create_activation("relu", 3).inplace
    assert type(create_activation("prelu", 3)) is PReLU
    assert create_activation("swish", 3).num_features == 3
    aplu = create_activation("aplu12", 3)
    assert (aplu.num_features, aplu.num_bins) == (3, 12)
    assert create_activation("lma", 3).num_bins == 8
    assert create_activation("lma4", 3).momentum == 0.01


def test_create_activation_passes_classes_and_callables_through():
    assert type(create_activation(nn.ReLU, 5)) is nn.ReLU  # takes no num_features: called with no arguments
    assert type(create_activation(nn.GELU, 5)) is nn.GELU
    swish = create_activation(Swish, 5)
    assert isinstance(swish, Swish) and swish.num_features == 5
    bn = create_activation(nn.BatchNorm2d, 5)
    assert bn.num_features == 5
    aplu = create_activation(functools.partial(APLU, num_bins=4), 5)
    assert (aplu.num_features, aplu.num_bins) == (5, 4)
    lma = create_activation(functools.partial(LMA, num_bins=4, update_stats_in_eval=True), 5)
    assert (lma.num_bins, lma.update_stats_in_eval) == (4, True)
    assert create_activation(LMA, 5).num_bins == 8
    seen = []
    layer = create_activation(lambda c: seen.append(c) or nn.Identity(), 5)
    assert seen == [5] and isinstance(layer, nn.Identity)
    assert isinstance(create_activation(lambda: nn.Tanh(), 5), nn.Tanh)


def test_create_activation_rejects_bad_input():
    with pytest.raises(TypeError, match="instance"):
        create_activation(nn.ReLU(), 4)
    with pytest.raises(TypeError, match="not an nn.Module"):
        create_activation(lambda c: c, 4)
    with pytest.raises(TypeError):
        create_activation(3.5, 4)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        create_activation("tanh", 4)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_features"):
            create_activation("swish", bad)


# ---------------------------------------------------------------------------------------------------------------------
# dtype and device


@pytest.mark.parametrize("tag", TAGS)
def test_autocast_bf16(tag):
    gen = torch.Generator().manual_seed(12)
    module = create_activation(tag, 4).train()
    x = torch.randn(8, 4, 5, 5, generator=gen).bfloat16().to(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all()
    for p in module.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all()
    if tag.startswith("lma"):
        assert module.running_mean.dtype == torch.float32
        assert module.running_std.item() == pytest.approx(0.99 + 0.01 * x.float().std().item(), rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tag", TAGS)
def test_forward_backward_on_device(tag, device):
    gen = torch.Generator().manual_seed(13)
    module = create_activation(tag, 4).to(device)
    x = torch.randn(8, 4, 6, 6, generator=gen).to(device, memory_format=torch.channels_last).requires_grad_()
    module(x).sum().backward()
    module.eval()
    with torch.no_grad():
        out = module(x)
    assert out.device == x.device and torch.isfinite(out).all()


def test_lma_parameter_gradients_accumulate_in_float32_under_bf16():
    """bf16 inputs (autocast) must not make the K-bin gradient sums lose precision.

    Under a sum() loss, offset.grad[k] is the number of elements in bin k: exact integers adding up to
    x.numel() (2^20 here), which a bf16 accumulator (8-bit mantissa) could not represent.
    """
    torch.manual_seed(0)
    layer = LMA(8).train()
    x = torch.randn(64, 16, 32, 32).bfloat16()
    layer(x).float().sum().backward()
    counts = layer.offset.grad
    assert counts.dtype == torch.float32
    assert torch.equal(counts, counts.round()) and counts.sum().item() == x.numel()
