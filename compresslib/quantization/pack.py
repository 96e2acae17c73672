"""The packed file of a quantized model: bit-packed integer codes plus each bucket's minimum and maximum.

Layout: 8 magic bytes, an 8-byte little-endian header length, a JSON header (model name and constructor
arguments, and per state_dict entry its kind, shape, dtype and byte range), then the payload. A quantized
tensor is stored as its learned points (differentiable quantization only), float32 minima and maxima (one
per bucket) and ``bits`` bits per element (up to 16; the header gives each tensor's width and bucket size); every
other entry (full-precision parameters, BatchNorm and LMA buffers) as its raw bytes. Loading rebuilds the
exact tensors, so the loaded model computes exactly what the quantized model computed, and the file's size
is the model's real storage cost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compresslib.io import atomic_open
from compresslib.models import count_parameters, create_model
from compresslib.quantization.size import huffman_mean_bits, model_size_mb, size_reduction_factor
from compresslib.quantization.uniform import QuantizedTensor

__all__ = ["PACKED_FORMAT", "PACKED_NAME", "pack_model", "pack_and_measure", "load_packed", "pack_codes",
           "unpack_codes"]

PACKED_NAME = "model.packed"  # next to model.pt in a quantized run's directory
PACKED_FORMAT = 2
_MAGIC = b"CLQPACK\x01"


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``bits`` low bits (at most 16) of each code, concatenated most significant bit first, zero-padded to a byte."""
    planes = np.unpackbits(codes.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - bits:]
    return np.packbits(planes.ravel()).tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits].reshape(count, bits)
    return np.packbits(np.pad(planes, ((0, 0), (16 - bits, 0))), axis=1).view(">u2").ravel().astype(np.int64)


def pack_model(path: str | Path, model: nn.Module, name: str, kwargs: dict, quantized: Mapping[str, QuantizedTensor],
               extra: dict | None = None) -> dict:
    """Write ``model`` (registered as ``name``) with the ``quantized`` entries as codes; return size facts.

    Each code set (on any device) must rebuild its state_dict entry exactly, which is checked before anything
    is written.
    ``code_counts`` pools how often each code value is used over all quantized tensors (for Huffman sizes).
    """
    state = model.state_dict()
    missing = sorted(set(quantized) - set(state))
    if missing:
        raise ValueError(f"cannot pack: {', '.join(missing)} not in the model's state_dict")
    entries, chunks, offset, code_counts = [], [], 0, Counter()
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        if key in quantized:
            codes = quantized[key]
            if tensor.dtype != torch.float32 or not torch.equal(codes.dequantize().cpu(), tensor):
                raise ValueError(f"cannot pack {key}: its codes do not rebuild it exactly (quantize the model first)")
            flat_codes = codes.codes.flatten()[: tensor.numel()].cpu().numpy()
            code_counts.update(dict(zip(*map(np.ndarray.tolist, np.unique(flat_codes, return_counts=True)))))
            floats = ([] if codes.points is None else [codes.points]) + [codes.minimum, codes.maximum]
            parts = [*(values.cpu().numpy().astype("<f4").tobytes() for values in floats),
                     pack_codes(flat_codes, codes.bits)]
            entry = {"kind": "quantized", "bits": codes.bits, "bucket_size": codes.bucket_size,
                     "buckets": codes.minimum.numel(), "points": 0 if codes.points is None else codes.points.numel()}
        else:
            array = tensor.contiguous().numpy()
            parts = [array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()]
            entry = {"kind": "raw", "dtype": str(array.dtype)}
        length = sum(map(len, parts))
        entries.append({"key": key, "shape": list(tensor.shape), "offset": offset, "length": length, **entry})
        chunks += parts
        offset += length
    header = json.dumps({"format": PACKED_FORMAT, "name": name, "kwargs": kwargs, "entries": entries,
                         "extra": extra or {}}, separators=(",", ":")).encode()
    with atomic_open(path, "wb") as handle:
        handle.write(_MAGIC + len(header).to_bytes(8, "little") + header)
        for chunk in chunks:
            handle.write(chunk)
    return {"file_bytes": Path(path).stat().st_size, "quantized_params": sum(state[k].numel() for k in quantized),
            "buckets": sum(e["buckets"] for e in entries if e["kind"] == "quantized"),
            "code_counts": {int(code): int(n) for code, n in sorted(code_counts.items())}}


def pack_and_measure(path: str | Path, model: nn.Module, name: str, kwargs: dict,
                     quantized: Mapping[str, QuantizedTensor], bits: int, bucket_size: int | None,
                     extra: dict | None = None) -> dict:
    """Pack the model and report its size as a record's ``quantization`` facts (QD's §1.9 figures and the file's).

    ``size_mb`` is QD's formula with Huffman-coded codes; ``packed_bytes`` is the real file, whose codes are
    fixed-width; ``compression`` is 32-bit storage over the packed file.
    """
    facts = pack_model(path, model, name, kwargs, quantized, extra)
    params = count_parameters(model)
    mean_bits = huffman_mean_bits(facts["code_counts"])
    return {
        "quantized_params": facts["quantized_params"], "full_precision_params": params - facts["quantized_params"],
        "buckets": facts["buckets"], "huffman_mean_bits": mean_bits,
        "size_reduction_factor": size_reduction_factor(bits, bucket_size),
        "size_mb": model_size_mb(params - facts["quantized_params"], facts["quantized_params"], mean_bits,
                                 facts["buckets"]),
        "packed_file": Path(path).name, "packed_bytes": facts["file_bytes"], "fp32_bytes": 4 * params,
        "compression": 4 * params / facts["file_bytes"],
    }


def load_packed(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a packed file; return it (in eval mode) and the header."""
    data = Path(path).read_bytes()
    if data[:8] != _MAGIC or len(data) < 16:
        raise ValueError(f"{path} is not a compresslib packed model (bad magic bytes)")
    header_length = int.from_bytes(data[8:16], "little")
    try:
        header = json.loads(data[16:16 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable header ({error})") from None
    if header.get("format") != PACKED_FORMAT:
        raise ValueError(f"{path} is a packed model of format {header.get('format')}, this version reads "
                         f"{PACKED_FORMAT}")
    payload = memoryview(data)[16 + header_length:]
    if sum(entry["length"] for entry in header["entries"]) != len(payload):
        raise ValueError(f"{path} is truncated or has trailing bytes: the header and the payload disagree")
    state = {entry["key"]: _read_entry(entry, payload, header) for entry in header["entries"]}
    model = create_model(header["name"], **header["kwargs"])
    model.load_state_dict(state)
    return model.to(device).eval(), header


def _read_entry(entry: dict, payload: memoryview, header: dict) -> torch.Tensor:
    chunk = payload[entry["offset"]:entry["offset"] + entry["length"]]
    shape = torch.Size(entry["shape"])
    if entry["kind"] == "raw":
        array = np.frombuffer(chunk, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).astype(entry["dtype"])
        return torch.from_numpy(array.copy()).reshape(shape)
    buckets, bits, bucket_size, count = entry["buckets"], entry["bits"], entry["bucket_size"], entry["points"]
    floats = np.frombuffer(chunk[: 4 * (count + 2 * buckets)], dtype="<f4").astype(np.float32)
    points = torch.from_numpy(floats[:count].copy()) if count else None
    minimum = torch.from_numpy(floats[count:count + buckets].copy())
    maximum = torch.from_numpy(floats[count + buckets:].copy())
    codes = torch.from_numpy(unpack_codes(bytes(chunk[4 * (count + 2 * buckets):]), bits, shape.numel()))
    width = shape.numel() if bucket_size is None else bucket_size
    codes = torch.cat([codes, codes.new_zeros(-shape.numel() % width)]).reshape(buckets, width)
    return QuantizedTensor(codes, minimum, maximum, shape, bits, bucket_size, points).dequantize()
