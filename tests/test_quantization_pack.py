"""The packed model file: bit packing, exact reload of a quantized model, and refusal of bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compresslib.models import create_model
from compresslib.quantization.pack import load_packed, pack_codes, pack_model, unpack_codes
from compresslib.quantization.shadow import ShadowQuantizer, quantized_parameter_names
from compresslib.quantization.size import model_size_mb
from compresslib.quantization.uniform import QuantizedTensor, quantize

EXAMPLE = torch.zeros(1, 3, 32, 32)
KWARGS = {"num_classes": 10, "activation": "lma4"}


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 16), data=st.data())
def test_codes_round_trip_through_bit_packing(bits, data):
    codes = np.array(data.draw(st.lists(st.integers(0, 2 ** bits - 1), min_size=1, max_size=300)), dtype=np.int64)
    packed = pack_codes(codes, bits)
    assert len(packed) == -(-codes.size * bits // 8)  # ceil(n * bits / 8) bytes: nothing but the bits
    assert np.array_equal(unpack_codes(packed, bits, codes.size), codes)


def _quantized_model(bits: int, bucket_size: int | None) -> tuple[torch.nn.Module, dict[str, QuantizedTensor]]:
    torch.manual_seed(0)
    model = create_model("demo_conv_student1", **KWARGS)
    with torch.no_grad():
        model.train()(torch.randn(64, 3, 32, 32))  # BatchNorm and LMA statistics away from their initial values
    names = quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    codes = ShadowQuantizer(model, names, bits, bucket_size).finalize_()
    return model.eval(), codes


@pytest.mark.parametrize("bits, bucket_size", [(2, 256), (4, 256), (8, None)])
def test_the_packed_file_reproduces_the_quantized_model_exactly(tmp_path: Path, bits: int, bucket_size: int | None):
    model, codes = _quantized_model(bits, bucket_size)
    names = list(codes)
    path = tmp_path / "model.packed"
    facts = pack_model(path, model, "demo_conv_student1", KWARGS, codes)
    loaded, header = load_packed(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    inputs = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model(inputs))
    assert header["name"] == "demo_conv_student1"
    assert {(e["bits"], e["bucket_size"]) for e in header["entries"] if e["kind"] == "quantized"} == {(bits, bucket_size)}

    # the file is a header, then per quantized tensor its codes (whole bytes) and a min and max per bucket,
    # and every other entry raw
    state = model.state_dict()
    header_bytes = 16 + int.from_bytes(path.read_bytes()[8:16], "little")
    code_bytes = sum(-(-state[k].numel() * bits // 8) for k in names)
    raw_bytes = sum(t.numel() * t.element_size() for k, t in state.items() if k not in names)
    assert facts["file_bytes"] == header_bytes + code_bytes + 8 * facts["buckets"] + raw_bytes
    # QD's size formula (§1.9) counts the same parts, less the header and the byte padding
    formula = model_size_mb(0, facts["quantized_params"], bits, facts["buckets"]) * 1e6 + raw_bytes
    assert 0 <= facts["file_bytes"] - header_bytes - formula < len(names)
    assert facts["file_bytes"] == path.stat().st_size
    assert sum(facts["code_counts"].values()) == facts["quantized_params"]
    assert facts["file_bytes"] < sum(t.numel() * t.element_size() for t in state.values())


def test_a_model_off_its_grid_is_not_packed(tmp_path: Path):
    model = create_model("demo_conv_student1", **KWARGS)
    names = quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    parameters = dict(model.named_parameters())
    codes = {name: quantize(parameters[name].detach(), 4, 256) for name in names}  # the model is not on its grid
    with pytest.raises(ValueError, match="do not rebuild it exactly"):
        pack_model(tmp_path / "m.packed", model, "demo_conv_student1", KWARGS, codes)
    assert not (tmp_path / "m.packed").exists()
    with pytest.raises(ValueError, match="not in the model's state_dict"):
        pack_model(tmp_path / "m.packed", model, "demo_conv_student1", KWARGS, {"nope.weight": codes[names[0]]})


def test_bad_files_are_refused(tmp_path: Path):
    model, codes = _quantized_model(4, 256)
    path = tmp_path / "model.packed"
    pack_model(path, model, "demo_conv_student1", KWARGS, codes)
    data = path.read_bytes()
    (tmp_path / "short.packed").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_packed(tmp_path / "short.packed")
    (tmp_path / "other.bin").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ValueError, match="bad magic bytes"):
        load_packed(tmp_path / "other.bin")
