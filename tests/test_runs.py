"""The run lifecycle every job shares: the record's one format, input facts, resume identity and sessions, state
files of another layout, and a finish that writes the record last and clears the work in progress."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
import torch

from compresslib import provenance
from compresslib.runs.checkpoint import CHECKPOINT_FORMAT, CheckpointMismatch
from compresslib.runs.lifecycle import Run
from compresslib.runs.record import RECORD_FORMAT, Record, read_record, read_record_list, write_record, write_record_list


def _record(**sections: object) -> Record:
    return Record(kind="teacher", run_dir="results/x", labels={"dataset": "synthetic"}, seed=3, spec={"lr": 0.1},
                  spec_hash="abc", sections=dict(sections), timing={"wall_s": 1.0}, hardware={"device": "cpu"},
                  provenance={"command": ["train.py"]})


def test_a_record_writes_its_header_then_its_sections_and_reads_back(tmp_path: Path):
    path = write_record(tmp_path, _record(metrics={"final_test_acc": 0.5}, curve={"epoch": [1]}))
    assert path == tmp_path / "record.json"
    written = json.loads(path.read_text())
    assert list(written) == ["format", "kind", "run_dir", "labels", "seed", "spec", "spec_hash", "metrics", "curve",
                             "timing", "hardware", "provenance"]
    assert written["format"] == RECORD_FORMAT and read_record(path) == written
    with pytest.raises(ValueError, match="may not redefine its own keys \\['seed'\\]"):
        _record(seed=4).to_json()


@pytest.mark.parametrize(("content", "message"), [
    ('{"format": 1, "kind": ', "record is not valid JSON"),
    ("[1, 2]", "record must be a JSON object, got list"),
    ('{"format": 1, "kind": "teacher", "labels": {}}', r"record lacks required keys \['run_dir', 'seed'\]"),
    ('{"format": 2, "kind": "teacher", "run_dir": "x", "labels": {}, "seed": 1}', "record format 2, expected 1"),
])
def test_reading_a_bad_record_names_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "record.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {message}"):
        read_record(path)


def test_reading_a_missing_record_names_the_file(tmp_path: Path):
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_record(missing)


def test_the_lifecycle_resumes_its_own_state_and_finishes_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data.bin"
    data.write_bytes(b"12345")
    data_sha256 = hashlib.sha256(b"12345").hexdigest()
    # each process (session) of the run: its start time, and the SLURM job it ran in
    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-01T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    first = Run(tmp_path / "run", command=["first"])
    with first.placed("cpu"):
        assert first.resume({"lr": 0.1}) is None
        assert first.input_file(data, rows=5) == {"path": str(data), "sha256": data_sha256, "rows": 5}
        first.begin_session(start_epoch=0)
        first.save_state({"lr": 0.1}, {"next_epoch": 1, "weights": torch.ones(2)})
    (tmp_path / "run" / "work").mkdir()

    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-02T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    second = Run(tmp_path / "run", command=["second"])
    with second.placed("cpu"):
        with pytest.raises(CheckpointMismatch, match="lr: 0.1 in the checkpoint, 0.2 requested"):
            second.resume({"lr": 0.2})
        state = second.resume({"lr": 0.1})
        assert state["next_epoch"] == 1 and torch.equal(state["weights"], torch.ones(2))
        second.begin_session(start_epoch=1)
        assert [session["start_epoch"] for session in second.sessions] == [0, 1]
        assert all(session["device"] == "cpu" for session in second.sessions)
        record = second.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                               timing=second.timing(train_s=2.0), data=second.input_file(data))
        written = second.finish(record, "work")
    host = socket.gethostname()
    assert written["timing"]["train_s"] == 2.0 and written["timing"]["sessions"] == [
        {"started_at": "2024-01-01T00:00:00+00:00", "start_epoch": 0, "hostname": host, "slurm_job_id": "101",
         "slurm_restart_count": None, "device": "cpu"},
        {"started_at": "2024-01-02T00:00:00+00:00", "start_epoch": 1, "hostname": host, "slurm_job_id": "102",
         "slurm_restart_count": "1", "device": "cpu"}]
    assert written["provenance"]["dataset"] == {"path": str(data), "sha256": data_sha256}
    assert written["provenance"]["started_at"] == "2024-01-02T00:00:00+00:00"
    assert written["provenance"]["command"] == ["second"] and written["hardware"]["device"] == "cpu"
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["record.json"]


def test_a_state_file_of_another_layout_is_refused_with_a_remedy(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT - 1, "identity": {}, "next_epoch": 1}, run_dir / "checkpoint.pt")
    with pytest.raises(ValueError, match=re.escape(f"{run_dir / 'checkpoint.pt'} is not a compresslib checkpoint of "
                                                   f"format {CHECKPOINT_FORMAT}; it was written by another compresslib "
                                                   "version")):
        Run(run_dir).resume({})


def test_a_record_list_round_trips_and_a_bad_one_names_the_file(tmp_path: Path):
    path = tmp_path / "records.json"
    write_record_list(path, ["results/a/record.json", Path("results/b/record.json")])
    assert json.loads(path.read_text()) == {"records": ["results/a/record.json", "results/b/record.json"]}
    assert read_record_list(path) == [Path("results/a/record.json"), Path("results/b/record.json")]
    path.write_text('{"records": "results/a/record.json"}')
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: a record list must be"):
        read_record_list(path)
