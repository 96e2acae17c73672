"""The packed file of a quantized model: bit-packed integer codes plus each bucket's minimum and maximum.

Layout: 8 magic bytes, an 8-byte little-endian header length, a JSON header (model name and constructor
arguments, and per state_dict entry its kind, shape, dtype and byte range), then the payload. A quantized
tensor is stored as float32 minima, float32 maxima (one per bucket) and ``bits`` bits per element; every
other entry (full-precision parameters, BatchNorm and LMA buffers) as its raw bytes. Loading rebuilds the
exact tensors, so the loaded model computes exactly what the quantized model computed, and the file's size
is the model's real storage cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compresslib.io import atomic_open
from compresslib.models import create_model
from compresslib.quantization.uniform import QuantizedTensor, quantize

__all__ = ["PACKED_FORMAT", "pack_model", "load_packed", "pack_codes", "unpack_codes"]

PACKED_FORMAT = 1
_MAGIC = b"CLQPACK\x01"


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``bits`` low bits of each uint8 code, concatenated most significant bit first, zero-padded to a byte."""
    planes = np.unpackbits(codes.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:]
    return np.packbits(planes.ravel()).tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits].reshape(count, bits)
    return np.packbits(np.pad(planes, ((0, 0), (8 - bits, 0))), axis=1).ravel()


def pack_model(path: str | Path, model: nn.Module, name: str, kwargs: dict, quantized: Iterable[str], bits: int,
               bucket_size: int | None, extra: dict | None = None) -> dict:
    """Write ``model`` (registered as ``name``) with the ``quantized`` parameters as codes; return size facts.

    The quantized parameters must already lie on their grid (a QD or PM model): their codes then reproduce them
    exactly, which is checked before anything is written.
    """
    quantized = set(quantized)
    state = model.state_dict()
    missing = sorted(quantized - set(state))
    if missing:
        raise ValueError(f"cannot pack: {', '.join(missing)} not in the model's state_dict")
    entries, chunks, offset, code_counts = [], [], 0, np.zeros(256, dtype=np.int64)
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        if key in quantized:
            codes = quantize(tensor, bits, bucket_size)
            if not torch.equal(codes.dequantize(), tensor.float()):
                raise ValueError(f"cannot pack {key}: it is not on its {bits}-bit grid (quantize the model first)")
            flat_codes = codes.codes.flatten()[: tensor.numel()].numpy()
            code_counts += np.bincount(flat_codes, minlength=256)
            parts = [codes.minimum.numpy().astype("<f4").tobytes(), codes.maximum.numpy().astype("<f4").tobytes(),
                     pack_codes(flat_codes, bits)]
            entry = {"kind": "quantized", "buckets": codes.minimum.numel()}
        else:
            array = tensor.contiguous().numpy()
            parts = [array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()]
            entry = {"kind": "raw", "dtype": str(array.dtype)}
        length = sum(map(len, parts))
        entries.append({"key": key, "shape": list(tensor.shape), "offset": offset, "length": length, **entry})
        chunks += parts
        offset += length
    header = json.dumps({"format": PACKED_FORMAT, "name": name, "kwargs": kwargs, "bits": bits,
                         "bucket_size": bucket_size, "entries": entries, "extra": extra or {}},
                        separators=(",", ":")).encode()
    with atomic_open(path, "wb") as handle:
        handle.write(_MAGIC + len(header).to_bytes(8, "little") + header)
        for chunk in chunks:
            handle.write(chunk)
    return {"file_bytes": Path(path).stat().st_size, "quantized_params": sum(state[k].numel() for k in quantized),
            "buckets": sum(e["buckets"] for e in entries if e["kind"] == "quantized"),
            "code_counts": {int(level): int(n) for level, n in enumerate(code_counts) if n}}


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
        raise ValueError(f"{path} is a packed model of format {header.get('format')}, this version reads {PACKED_FORMAT}")
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
    buckets, bits, bucket_size = entry["buckets"], header["bits"], header["bucket_size"]
    minimum = torch.from_numpy(np.frombuffer(chunk[: 4 * buckets], dtype="<f4").astype(np.float32))
    maximum = torch.from_numpy(np.frombuffer(chunk[4 * buckets: 8 * buckets], dtype="<f4").astype(np.float32))
    codes = torch.from_numpy(unpack_codes(bytes(chunk[8 * buckets:]), bits, shape.numel()).copy())
    width = shape.numel() if bucket_size is None else bucket_size
    codes = torch.cat([codes, codes.new_zeros(-shape.numel() % width)]).reshape(buckets, width)
    return QuantizedTensor(codes, minimum, maximum, shape, bits, bucket_size).dequantize()
