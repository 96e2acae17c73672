"""The record of a finished run (``record.json``): one type, one format, one writer, one reader.

Every job kind writes one ``record.json`` last, so its presence means "finished": a training run (image or
translation), a post-training quantization, an ESNAC search. Aggregation reads only these files. Every record
holds the same header (``format``, ``kind``, ``run_dir``, ``labels``, ``seed``, checked on reading; then ``spec``
and ``spec_hash``), then
the sections its kind reports (metrics, curve, model, quantization, ...; ``compresslib.experiments`` checks each
kind's), then ``timing``, ``hardware`` and ``provenance``. :class:`Record` builds it, :func:`write_record` writes it
atomically, :func:`read_record` reads one back with the header checked and the file named in every error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.io import read_json_object, write_json

__all__ = ["RECORD_FORMAT", "RECORD_NAME", "MODEL_NAME", "HISTORY_NAME", "HEADER_KEYS", "MODEL_KEYS",
           "QUANTIZATION_KEYS", "Record", "write_record",
           "read_record", "write_record_list", "read_record_list"]

RECORD_FORMAT = 1
RECORD_NAME = "record.json"
MODEL_NAME, HISTORY_NAME = "model.pt", "history.csv"  # a training run's model and per-epoch history
HEADER_KEYS = ("format", "kind", "run_dir", "labels", "seed")  # what every record has, whatever its kind
# what the tables read of a training record's ``model`` section, and of a quantized run's ``quantization``
MODEL_KEYS = ("params", "bytes_fp32")
QUANTIZATION_KEYS = ("method", "bits", "bucket_size", "quantized_params", "full_precision_params",
                     "huffman_mean_bits", "size_reduction_factor", "size_mb", "packed_bytes", "compression")


@dataclass(frozen=True)
class Record:
    """A finished run's record. ``kind`` is its job's kind (the result tables' rows are picked by it); ``sections``
    are what that kind reports, in the order written."""

    kind: str
    run_dir: str
    labels: dict[str, Any]
    seed: int
    spec: dict[str, Any]
    spec_hash: str
    sections: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as ``record.json`` holds it."""
        clash = sorted(set(self.sections) & {*HEADER_KEYS, "spec", "spec_hash", "timing", "hardware", "provenance"})
        if clash:
            raise ValueError(f"a record's sections may not redefine its own keys {clash}")
        return {"format": RECORD_FORMAT, "kind": self.kind, "run_dir": self.run_dir, "labels": dict(self.labels),
                "seed": self.seed, "spec": self.spec, "spec_hash": self.spec_hash, **self.sections,
                "timing": self.timing, "hardware": self.hardware, "provenance": self.provenance}


def write_record(run_dir: str | Path, record: Record) -> Path:
    """Write ``<run_dir>/record.json`` atomically; returns its path."""
    path = Path(run_dir) / RECORD_NAME
    write_json(path, record.to_json())
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """A record.json as a dict, its header checked (format and the keys every record has); errors name the file."""
    record = read_json_object(path, "record")
    missing = [key for key in HEADER_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: record lacks required keys {missing}")
    if record["format"] != RECORD_FORMAT:
        raise ValueError(f"{path}: record format {record['format']!r}, expected {RECORD_FORMAT}")
    return record


def write_record_list(path: str | Path, records: list[str]) -> None:
    """A record list, ``{"records": [record.json paths]}``: the records of jobs known only once a checkpoint job ran
    (an ESNAC search's full trainings), which aggregation reads as if they were named to it."""
    write_json(path, {"records": [str(record) for record in records]})


def read_record_list(path: str | Path) -> list[Path]:
    """The record paths a :func:`write_record_list` file names; errors name the file."""
    listed = read_json_object(path, "record list").get("records")
    if not isinstance(listed, list) or not all(isinstance(record, str) for record in listed):
        raise ValueError(f"{path}: a record list must be {{\"records\": [paths]}}, got {listed!r}")
    return [Path(record) for record in listed]
