"""compresslib.piecewise_cpu, the C kernels of LMA and APLU on the CPU: the eager path's outputs and input gradients
to the bit and its parameter gradients to rounding, in every layout, segment count and block split; built once into
its folder; and a missing compiler or COMPRESSLIB_CPU_KERNELS=off that leaves the eager path, said in the record."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from compresslib import piecewise_cpu, provenance
from compresslib.activations import APLU, LMA
from compresslib.devices import place

pytestmark = pytest.mark.skipif(not piecewise_cpu.usable(torch.zeros(2), 8),
                                reason=f"the CPU kernels are {piecewise_cpu.kernel_state()} here")

# (N, C, H, W) shapes: vector lanes with tails, rows longer than one block (2048), more channels than a block
SHAPES = [(3, 4, 5, 6), (2, 3, 7, 5), (2, 3, 50, 50), (1, 2100, 1, 3)]


def gradients(layer: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = layer(x)
    (out * weights).sum().backward()
    return out.detach(), x.grad, *(p.grad for p in layer.parameters())


def native_and_eager(make_layer, x: torch.Tensor, monkeypatch) -> tuple[tuple, tuple]:
    generator = torch.Generator().manual_seed(3)
    layer = make_layer(x.shape[1])
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    weights = torch.randn(x.shape, generator=generator)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    ran, kernel_backward = [], piecewise_cpu.backward
    with monkeypatch.context() as patch:
        patch.setattr(piecewise_cpu, "backward", lambda *args: ran.append(True) or kernel_backward(*args))
        native = gradients(layer, x, weights)
    assert ran, "the kernels did not take the call"
    layer.load_state_dict(state)
    with monkeypatch.context() as patch:
        patch.setattr(piecewise_cpu, "usable", lambda *args: False)
        eager = gradients(layer, x, weights)
    return native, eager


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("make_layer", [lambda c: LMA(2).train(), lambda c: LMA(8).train(), lambda c: LMA(32).eval(),
                                        lambda c: APLU(c, 3), lambda c: APLU(c, 8), lambda c: APLU(c, 32),
                                        lambda c: APLU(c, 8, per_channel=False)],
                         ids=["lma2", "lma8", "lma32-eval", "aplu3", "aplu8", "aplu32", "aplu8-flat"])
def test_kernels_give_the_eager_numbers(make_layer, shape, channels_last, monkeypatch):
    x = 1.5 * torch.randn(shape, generator=torch.Generator().manual_seed(1)) + 0.2
    x.view(-1)[::97] = 0.0  # on APLU's kink
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    (out, grad_x, *params), (eager_out, eager_grad_x, *eager_params) = native_and_eager(make_layer, x, monkeypatch)
    assert torch.equal(out, eager_out)
    assert torch.equal(grad_x, eager_grad_x)
    for grad, eager in zip(params, eager_params, strict=True):  # float64 sums of float32 parts against float32 sums
        torch.testing.assert_close(grad, eager, rtol=2e-5, atol=2e-5 * float(eager.abs().max()))


def test_a_nan_stays_in_its_own_slot(monkeypatch):
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    layer = APLU(3, 8)
    x[0, 1, 2, 3] = float("nan")
    (out, grad_x, grad_a, grad_b), _ = native_and_eager(lambda c: layer, x, monkeypatch)
    assert out.isnan().sum() == 1 and grad_x.isnan().sum() == 0
    assert grad_a[[0, 2]].isfinite().all() and grad_a[1].isnan().any()  # only the NaN's channel


@pytest.fixture
def fresh_build(monkeypatch, tmp_path: Path):
    """The kernels loaded anew, built into an empty folder; the process's own build again afterwards."""
    monkeypatch.setenv(piecewise_cpu.KERNEL_DIR_VARIABLE, str(tmp_path / "kernels"))
    piecewise_cpu._library.cache_clear()
    yield tmp_path / "kernels"
    piecewise_cpu._library.cache_clear()
    monkeypatch.undo()
    piecewise_cpu.usable(torch.zeros(2), 8)


def test_built_once_into_its_folder_and_named_in_the_record(fresh_build: Path):
    assert piecewise_cpu.usable(torch.zeros(2), 8)
    [library] = fresh_build.iterdir()  # no scratch folder left
    assert library.name.startswith("piecewise_cpu-") and library.suffix == ".so"
    built_at = library.stat().st_mtime_ns
    piecewise_cpu._library.cache_clear()
    assert piecewise_cpu.usable(torch.zeros(2), 8) and library.stat().st_mtime_ns == built_at
    with place("cpu") as placement:
        assert provenance.hardware(placement, 1)["cpu_kernels"] == "built"


def test_without_a_compiler_the_layers_run_eager_and_say_why(fresh_build: Path, monkeypatch, caplog):
    monkeypatch.setenv("CC", "no-such-compiler")
    x = torch.randn(4, 3, 5, 5)
    with caplog.at_level(logging.WARNING, logger=piecewise_cpu.__name__):
        out = LMA(8).train()(x)
    assert piecewise_cpu.kernel_state() == "unavailable: no C compiler 'no-such-compiler' on PATH (set CC)"
    assert [r.getMessage() for r in caplog.records] == [
        "LMA and APLU run eager on the CPU (slower): the CPU kernels are " + piecewise_cpu.kernel_state()]
    assert out.shape == x.shape and not fresh_build.exists()


def test_a_failing_build_names_the_compiler_error(fresh_build: Path, monkeypatch, tmp_path: Path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'cc 1.0' && exit 0\n"
                      "echo 'piecewise_cpu.c:1: error: out of cheese' >&2; exit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    assert not piecewise_cpu.usable(torch.zeros(2), 8)
    assert piecewise_cpu.kernel_state() == (f"unavailable: {broken} failed to build piecewise_cpu.c: "
                                            "piecewise_cpu.c:1: error: out of cheese")
    assert list(fresh_build.iterdir()) == []  # the scratch folder went


def test_off_chooses_the_eager_path(fresh_build: Path, monkeypatch):
    monkeypatch.setenv(piecewise_cpu.KERNELS_VARIABLE, "off")
    assert not piecewise_cpu.usable(torch.zeros(2), 8)
    assert piecewise_cpu.kernel_state() == "off"


def test_activation_benchmark_says_which_path_it_timed(capsys):
    from compresslib.bench import activations

    activations.main(["--rounds", "1", "--shape", "2,3,4,4"])
    header, columns, *rows = capsys.readouterr().out.splitlines()
    assert header.endswith("best of 1 rounds, CPU kernels built")
    assert columns.split() == ["layer", "ms", "x", "relu"]
    assert [row.split()[0] for row in rows] == list(activations.TAGS)
