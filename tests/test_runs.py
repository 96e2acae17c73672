"""The run lifecycle every job shares: the record's one format, input facts, resume identity and sessions, state
files of another layout, and a finish that writes the record last and clears the work in progress."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from pathlib import Path

import pytest
import torch

from compresslib import provenance
from compresslib.runs import folder
from compresslib.io import atomic_path, load_torch, save_torch
from compresslib.runs.checkpoint import CHECKPOINT_FORMAT, CheckpointMismatch
from compresslib.runs.lifecycle import Run
from compresslib.runs.record import (RECORD_FORMAT, Record, read_record, read_record_list, write_record,
                                     write_record_list)


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


def _input(path: Path, content: bytes) -> Path:
    """An input file as another job writes it: its checksum beside it."""
    with atomic_path(path, checksum=True) as tmp:
        tmp.write_bytes(content)
    return path


def _run(run_dir: Path, lr: float = 0.1, command: list[str] | None = None) -> Run:
    return Run(run_dir, command=command, identity={"lr": lr}, outputs=("model.pt",), work=("work",))


def test_the_lifecycle_resumes_its_own_state_and_finishes_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = _input(tmp_path / "data.bin", b"12345")
    data_sha256 = hashlib.sha256(b"12345").hexdigest()
    # each process (session) of the run: its start time, and the SLURM job it ran in
    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-01T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    first = _run(tmp_path / "run", command=["first"])
    first.check_inputs(data=data)
    with first.owned() as finished, first.placed("cpu"):
        assert finished is None and first.resume() is None
        assert first.input_file(data, rows=5) == {"path": str(data), "sha256": data_sha256, "rows": 5}
        first.begin_session(start_epoch=0)
        first.save_state({"next_epoch": 1, "weights": torch.ones(2)})
    (tmp_path / "run" / "work").mkdir()

    other = _run(tmp_path / "run", lr=0.2)
    other.check_inputs(data=data)
    with other.owned(), pytest.raises(CheckpointMismatch, match="lr: 0.1 in the checkpoint, 0.2 requested"):
        other.resume()

    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-02T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    second = _run(tmp_path / "run", command=["second"])
    second.check_inputs(data=data)
    with second.owned(), second.placed("cpu"):
        state = second.resume()
        assert state["next_epoch"] == 1 and torch.equal(state["weights"], torch.ones(2))
        second.begin_session(start_epoch=1)
        assert [session["start_epoch"] for session in second.sessions] == [0, 1]
        assert all(session["device"] == "cpu" for session in second.sessions)
        save_torch(tmp_path / "run" / "model.pt", {"w": torch.ones(2)}, checksum=True)
        record = second.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                               timing=second.timing(train_s=2.0), data=second.input_file(data))
        written = second.finish(record)
    host = socket.gethostname()
    assert written["timing"]["train_s"] == 2.0 and written["timing"]["sessions"] == [
        {"started_at": "2024-01-01T00:00:00+00:00", "start_epoch": 0, "hostname": host, "slurm_job_id": "101",
         "slurm_restart_count": None, "device": "cpu"},
        {"started_at": "2024-01-02T00:00:00+00:00", "start_epoch": 1, "hostname": host, "slurm_job_id": "102",
         "slurm_restart_count": "1", "device": "cpu"}]
    assert written["provenance"]["dataset"] == {"path": str(data), "sha256": data_sha256}
    assert written["provenance"]["started_at"] == "2024-01-02T00:00:00+00:00"
    assert written["provenance"]["code_sha256"] == provenance.code_sha256()
    assert written["provenance"]["command"] == ["second"] and written["hardware"]["device"] == "cpu"
    # no state, work or lock; the finished run's files are also linked in .finished/
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        ".finished", "model.pt", "model.pt.sha256", "record.json"]
    kept = tmp_path / "run" / ".finished"
    files = json.loads((kept / "made-from.json").read_text())["files"]
    assert sorted(files) == ["model.pt", "model.pt.sha256", "record.json"]  # each under its sha256: no second
    assert sorted(path.name for path in kept.iterdir()) == sorted([*files.values(), "made-from.json"])  # record.json
    for name, sha256 in files.items():
        assert (kept / sha256).stat().st_ino == (tmp_path / "run" / name).stat().st_ino
        assert hashlib.sha256((kept / sha256).read_bytes()).hexdigest() == sha256


def _finished_run(run_dir: Path, data: Path) -> dict:
    run = _run(run_dir)
    run.check_inputs(data=data)
    with run.owned(), run.placed("cpu"):
        run.begin_session(start_epoch=0)
        save_torch(run_dir / "model.pt", {"w": torch.arange(3.0)}, checksum=True)
        return run.finish(run.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                                     timing=run.timing(), data=run.input_file(data)))


def _deleted_by_snakemake(run_dir: Path) -> None:
    """What Snakemake does before it runs a job again: its declared outputs go."""
    for name in ("model.pt", "record.json"):
        (run_dir / name).unlink()


def test_a_finished_run_whose_outputs_were_deleted_is_restored_not_run_again(tmp_path: Path):
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    written = _finished_run(run_dir, data)
    before = (run_dir / "model.pt").stat().st_mtime_ns
    _deleted_by_snakemake(run_dir)
    again = _run(run_dir)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished == written
    assert torch.equal(load_torch(run_dir / "model.pt")["w"], torch.arange(3.0))
    assert (run_dir / "model.pt").stat().st_mtime_ns >= before  # made now, as far as Snakemake can tell
    assert read_record(run_dir / "record.json") == written


@pytest.mark.parametrize("change", ["settings", "input", "code", "damaged"])
def test_a_kept_run_is_not_restored_for_another_job_or_when_damaged(tmp_path: Path, change: str,
                                                                    monkeypatch: pytest.MonkeyPatch):
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    _finished_run(run_dir, data)
    _deleted_by_snakemake(run_dir)
    lr = 0.2 if change == "settings" else 0.1
    if change == "input":
        data = _input(tmp_path / "data.bin", b"67890")
    if change == "code":
        monkeypatch.setattr(provenance, "code_sha256", lambda: "0" * 64)
    if change == "damaged":
        files = json.loads((run_dir / ".finished" / "made-from.json").read_text())["files"]
        kept = run_dir / ".finished" / files["model.pt"]
        kept.write_bytes(kept.read_bytes()[:-1] + b"x")
    again = _run(run_dir, lr=lr)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished is None
        assert sorted(path.name for path in run_dir.iterdir()) == [".lock", "model.pt.sha256"]  # to be made anew


def test_a_state_file_written_from_other_input_files_is_refused(tmp_path: Path):
    """The input files' checksums are part of the identity a state file must match: a run whose dataset was made
    again (another dataset, its checksum recorded) does not continue the old one's epochs."""
    for content in (b"old", b"new"):
        run = _run(tmp_path / "run")
        run.check_inputs(data=_input(tmp_path / "data.bin", content))
        with run.owned():
            if content == b"old":
                run.save_state({"next_epoch": 1})
            else:
                with pytest.raises(CheckpointMismatch, match=f"data_sha256: '{hashlib.sha256(b'old').hexdigest()}' "
                                                             "in the checkpoint, "):
                    run.resume()


def test_a_state_file_of_another_layout_is_refused_with_a_remedy(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT - 1, "identity": {}, "next_epoch": 1}, run_dir / "checkpoint.pt")
    with pytest.raises(ValueError, match=re.escape(f"{run_dir / 'checkpoint.pt'} is not a compresslib checkpoint of "
                                                   f"format {CHECKPOINT_FORMAT}; it was written by another compresslib "
                                                   "version")):
        _run(run_dir).resume()


def test_a_record_list_round_trips_and_a_bad_one_names_the_file(tmp_path: Path):
    path = tmp_path / "records.json"
    write_record_list(path, ["results/a/record.json", Path("results/b/record.json")])
    assert json.loads(path.read_text()) == {"records": ["results/a/record.json", "results/b/record.json"]}
    assert read_record_list(path) == [Path("results/a/record.json"), Path("results/b/record.json")]
    path.write_text('{"records": "results/a/record.json"}')
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: a record list must be"):
        read_record_list(path)


def test_a_job_snakemake_recorded_as_finished_is_run_again_not_restored(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A rerun on purpose (--forcerun) runs; only a job Snakemake never recorded (stopped or dead while it finished)
    is restored. The metadata path is Snakemake's own, long names split as it splits them."""
    from snakemake.persistence.file import FilePersistence

    monkeypatch.chdir(tmp_path)
    run_dir = Path("results") / ("x" * 120) / ("y" * 120) / "seed1"  # its encoded record path needs two names
    data = _input(tmp_path / "data.bin", b"12345")
    _finished_run(run_dir, data)
    _deleted_by_snakemake(run_dir)
    persistence = type("Stub", (), {"_fetch_max_len": lambda self, subject: os.pathconf(".", "PC_NAME_MAX")})()
    recorded = Path(FilePersistence._record_path(persistence, ".snakemake/metadata", str(run_dir / "record.json")))
    assert len(recorded.parts) == 4 and recorded.parts[2].startswith("@")
    assert not folder.snakemake_recorded(run_dir / "record.json")
    recorded.parent.mkdir(parents=True)
    recorded.write_text("{}")
    assert folder.snakemake_recorded(run_dir / "record.json")
    again = _run(run_dir)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished is None and not (run_dir / ".finished").exists()
