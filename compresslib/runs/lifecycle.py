"""One job's lifecycle in its run folder, shared by every job kind: the image training loop, translation training,
the ESNAC search and post-training quantization.

A job reads top to bottom as: open a :class:`Run` on its folder -> ``check_inputs``: every file it reads that
another job made, checked against the checksum that job recorded, before any work -> ``owned``: the folder's lock,
held to the end (``compresslib.runs.folder``: a second process is refused, an unwritable folder fails here, killed
runs' temporary files go, a finished run is replaced only with ``overwrite``, and this very run, finished before and
its outputs deleted by Snakemake to run it again, is restored instead of trained again) -> ``placed`` (the GPU it
was given, slots of a leased GPU, or the CPU, with its threads, and how its models run there: ``compresslib.devices``)
-> its inputs' facts by ``input_file`` (path and sha256, hashed once) -> ``resume`` from the folder's state file
when there is one (refused, naming what differs, when it was written with other settings or from other input files),
then ``begin_session`` (in the folder's sessions file at once) -> its own work, calling ``save_state`` after every
unit of progress -> its output files (written atomically) -> ``record`` (timing, hardware, provenance filled in) ->
``finish``, which writes record.json last, so its presence means "finished", keeps links to the finished run, and
deletes the state and sessions files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from compresslib import provenance
from compresslib.devices import Placement, Precision, device_precision, place
from compresslib.io import atomic_open, verified_sha256
from compresslib.runs.checkpoint import (CHECKPOINT_NAME, SESSIONS_NAME, check_resumable, load_checkpoint,
                                         load_sessions, save_checkpoint, save_sessions)
from compresslib.runs.folder import keep_finished, owned_folder, remove_leftovers, remove_run, restore_finished
from compresslib.runs.record import RECORD_NAME, Record, read_record, write_record

__all__ = ["Run", "TrainingDiverged", "cpu_state", "write_history"]

log = logging.getLogger(__name__)


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite (or exploded); the run writes no outputs."""


class Run:
    """A job working in ``run_dir``. ``identity``: the settings its state file must match to be resumed (with its
    input files' checksums). ``outputs`` are the names of the files and folders it writes there besides its record,
    ``work`` those of the folders of its work in progress, deleted with its state file ``state_name`` once it
    finished. ``overwrite``: a finished run in the folder is replaced (else refused)."""

    def __init__(self, run_dir: str | Path, command: list[str] | None = None, *, identity: dict,
                 outputs: tuple[str, ...], state_name: str = CHECKPOINT_NAME, work: tuple[str, ...] = (),
                 overwrite: bool = False) -> None:
        self.started_at, self._wall_start = provenance.now_iso(), time.perf_counter()
        self.run_dir = Path(run_dir)  # created by ``owned``, after every input check passed
        self.command, self.identity = command, identity
        self.state_path, self.sessions_path = self.run_dir / state_name, self.run_dir / SESSIONS_NAME
        self.outputs, self.work, self.overwrite = outputs, work, overwrite
        self.sessions: list[dict] = []  # one entry per process that worked on the run
        self.placement: Placement | None = None
        self.precision: Precision | None = None
        self._inputs: dict[Path, dict] = {}
        self._roles: dict[str, Path] = {}

    def check_inputs(self, **paths: str | Path | None) -> None:
        """Check each input file (by its role: data=..., teacher=...; None: not used) against the checksum of the job
        that made it, before any work; their checksums join the identity a state file must match."""
        for role, path in paths.items():
            if path is not None:
                self._roles[role] = Path(path)
                self.input_file(path)

    @contextlib.contextmanager
    def owned(self) -> Iterator[dict | None]:
        """Hold the run folder for the block (created, locked, found writable, cleared of killed runs' temporary
        files and, with ``overwrite``, of a finished run). Yields the record of this very run when it had finished
        and Snakemake deleted its outputs to run it again (``compresslib.runs.folder.restore_finished``: they are
        back, and the job has nothing to do), else None."""
        names = (*self.outputs, self.state_path.name, SESSIONS_NAME, *self.work)
        with owned_folder(self.run_dir):
            for leftover in remove_leftovers(self.run_dir, names):
                log.info("removed %s, left by a killed run", leftover)
            if not self.overwrite and restore_finished(self.run_dir, self._made_from()):
                yield read_record(self.run_dir / RECORD_NAME)
                return
            if remove_run(self.run_dir, names, self.overwrite):
                log.info("removed the finished run in %s (overwrite)", self.run_dir)
            yield None

    def _made_from(self) -> dict:
        return {"identity": self._with_inputs(self.identity), "code_sha256": provenance.code_sha256()}

    @contextlib.contextmanager
    def placed(self, device: str, threads: int = 0, precision: str = "auto", channels_last: bool | None = None,
               images: bool = True) -> Iterator[Placement]:
        """Hold the job's device (``device`` as a spec gives it) for the block; ``threads`` CPU threads for torch
        (0: torch's default). How the job's models run there is :attr:`precision` (``devices.device_precision`` of
        the spec's ``precision`` and ``channels_last``; ``images`` False: inputs with no image memory layout)."""
        with place(device) as placement:
            if placement.device.type == "cpu" and threads:
                torch.set_num_threads(threads)
            self.placement = placement
            self.precision = device_precision(placement.device, precision, channels_last, images)
            slots = f", slots {list(placement.lease.slots)} of {placement.slots_per_gpu}" if placement.lease else ""
            gpu = f"; GPU {placement.gpu_uuid}{slots}" if placement.gpu_uuid else ""
            log.info("device %s (%s%s), %s, threads %d", placement.device, placement.choice.value, gpu,
                     self.precision.describe(), torch.get_num_threads())
            yield placement

    @property
    def device(self) -> torch.device:
        return self.placement.device

    def input_file(self, path: str | Path, /, **facts: object) -> dict:
        """``{"path", "sha256", **facts}`` of an input file, checked against its producer's checksum and hashed once
        per run whatever asks again. A fact named like one of the file's own (a dataset prepared from a folder has a
        ``path`` of its own) is kept as ``source_<name>``."""
        path = Path(path)
        if path not in self._inputs:
            self._inputs[path] = {"path": str(path), "sha256": verified_sha256(path)}
        own = self._inputs[path]
        return {**own, **{f"source_{key}" if key in own else key: value for key, value in facts.items()}}

    def resume(self) -> dict | None:
        """The folder's state, when there is one written with this run's identity and from the same input files
        (else CheckpointMismatch naming what differs); its sessions continue this run's where the folder has no
        sessions file for it (``begin_session``). None for a fresh run."""
        state = load_checkpoint(self.state_path)
        if state is not None:
            check_resumable(state["identity"], self._with_inputs(self.identity), self.state_path)
            self.sessions = state["sessions"]
        return state

    def _with_inputs(self, identity: dict) -> dict:
        return {**identity, **{f"{role}_sha256": self._inputs[path]["sha256"] for role, path in self._roles.items()}}

    def begin_session(self, **progress: object) -> None:
        """Record this process as a session of the run, with how far the run was when it started (``start_epoch``,
        ``evaluated_before``): a run resubmitted after a time limit shows each job. The sessions file is written at
        once, so a process killed before the run's state is next saved stays one of its sessions."""
        identity = self._with_inputs(self.identity)
        earlier = load_sessions(self.sessions_path, identity)
        self.sessions = [*(self.sessions if earlier is None else earlier),
                         {"started_at": self.started_at, **progress, **provenance.job_identity(),
                          "device": str(self.device)}]
        save_sessions(self.sessions_path, identity, self.sessions)

    def save_state(self, state: dict) -> None:
        """Rewrite the state file (atomically) with the run's identity and sessions."""
        save_checkpoint(self.state_path, {"identity": self._with_inputs(self.identity), "sessions": self.sessions,
                                          **state})

    def timing(self, **facts: object) -> dict:
        """A record's ``timing``: the wall time so far, the job's own figures, and the sessions."""
        return {"wall_s": time.perf_counter() - self._wall_start, **facts, "sessions": self.sessions}

    def epoch_timing(self, history: list[dict], **facts: object) -> dict:
        """A training run's ``timing``: its training seconds and mean epoch seconds (training and evaluation) over
        its ``history`` rows, the job's own figures, and the epoch its last session started from."""
        epoch_seconds = [row["train_seconds"] + row["eval_seconds"] for row in history]
        return self.timing(train_s=sum(row["train_seconds"] for row in history),
                           epoch_s_mean=sum(epoch_seconds) / len(epoch_seconds), **facts,
                           resumed_from_epoch=self.sessions[-1]["start_epoch"])

    def record(self, *, kind: str, labels: dict, seed: int, spec: dict, spec_hash: str, sections: dict,
               timing: dict, data: dict, **inputs: dict | None) -> Record:
        """The run's record: ``data`` is the facts of the data file it read (``input_file``), ``inputs`` those of the
        other files it read (teacher_model=..., init_model=..., teacher_views=...); hardware and provenance are
        filled in."""
        return Record(kind=kind, run_dir=str(self.run_dir), labels=dict(labels), seed=seed, spec=spec,
                      spec_hash=spec_hash, sections=sections, timing=timing,
                      hardware=provenance.hardware(self.placement, torch.get_num_threads()),
                      provenance=provenance.run_provenance(data, self.command, self.started_at, **inputs))

    def finish(self, record: Record) -> dict:
        """Write record.json (last: the run is finished), keep links to it and the outputs (``.finished/``), then
        delete the state and sessions files and the folders of the run's work in progress; returns the record as
        written."""
        write_record(self.run_dir, record)
        keep_finished(self.run_dir, self.outputs, self._made_from())
        self.state_path.unlink(missing_ok=True)
        self.sessions_path.unlink(missing_ok=True)
        for name in self.work:
            shutil.rmtree(self.run_dir / name, ignore_errors=True)
        return record.to_json()


def cpu_state(model: nn.Module) -> dict:
    """A copy of the model's state on the CPU (for checkpoints and the best epoch's weights)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def write_history(path: Path, history: list[dict], leading: tuple[str, ...]) -> None:
    """history.csv, atomically: the ``leading`` columns first, then any other keys of the rows in their order."""
    buffer = io.StringIO()
    columns = leading + tuple(key for key in history[0] if key not in leading)
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
