"""A run folder's rolling state file (``checkpoint.pt``; an ESNAC search's ``search-state.pt``) and the strict
resume check.

The state holds plain state only (state_dicts, numbers, lists): what the job needs to continue (a training run:
model, optimisers, schedule state, the history so far, the best epoch's weights when it selects them, the next
epoch; a search: every evaluated candidate and the pending proposals), the identity that produced it (the settings
and the checksums of the run's input files), and ``sessions``, one entry per process that worked on the run.
It is rewritten atomically after every unit of progress and deleted once the run's outputs are complete. It carries
its own checksums (the CRC32 torch records for each of its members), checked before it is loaded.
Randomness needs no saved state: every epoch (or search step) reseeds from ``(seed, epoch)``.

The sessions are also written, with the identity, to ``sessions.json`` as each process starts, before its first unit
of progress: a job killed before it saved any state is still a session of the run. That file, when written for the
same identity, is the run's list of sessions; a state file's own list serves where there is no such file.

A process that only watches a run (``python -m compresslib status``) reads the state's plain values without torch
(:func:`peek_checkpoint`).
"""

from __future__ import annotations

import collections
import io
import json
import logging
import pickle
import zipfile
from pathlib import Path

from compresslib.io import load_versioned, read_json_object, save_torch, write_json

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "SESSIONS_NAME", "CheckpointMismatch", "save_checkpoint",
           "load_checkpoint", "peek_checkpoint", "check_resumable", "save_sessions", "load_sessions"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 3  # 3: one layout for every job kind (identity, sessions, then the job's own state)
SESSIONS_NAME = "sessions.json"

log = logging.getLogger(__name__)


class CheckpointMismatch(ValueError):
    """The state file in a run directory was written for a different configuration."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    save_torch(path, {"format": CHECKPOINT_FORMAT, **state})


def load_checkpoint(path: str | Path) -> dict | None:
    """The state file at ``path``, or None when there is none; a damaged one, or one of another layout, is refused,
    naming it."""
    path = Path(path)
    if not path.exists():
        return None
    return load_versioned(path, CHECKPOINT_FORMAT, "compresslib checkpoint",
                          "it was written by another compresslib version or is damaged; delete it to start the run "
                          "over", check=True)


def peek_checkpoint(path: str | Path) -> dict:
    """The plain values of the state file at ``path`` (identity, sessions, history, next epoch, evaluated candidates:
    dicts, lists, numbers, strings), read without torch and without loading a tensor: its pickle alone, whose
    tensors come back as placeholders. The file is opened once, so a state replaced meanwhile (atomically) is read
    whole, old or new. ValueError naming the file when it is not a readable state (damaged, foreign, truncated)."""
    try:
        with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            pickled = next(name for name in archive.namelist() if name.rpartition("/")[2] == "data.pkl")
            state = _PlainUnpickler(io.BytesIO(archive.read(pickled))).load()  # the read checks its CRC32
    except (zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a readable compresslib checkpoint ({type(error).__name__}: {error})") \
            from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a compresslib checkpoint of format {CHECKPOINT_FORMAT}")
    return state


class _TorchPlaceholder:
    """What a torch object (a tensor, its storage, a dtype) of a peeked state reads as: nothing of it is loaded."""

    def __init__(self, *args: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain state: a torch class resolves to :class:`_TorchPlaceholder` and a tensor's bytes (a persistent
    id) to None; any other class is refused, so nothing of the file runs."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("collections", "OrderedDict"):  # a state_dict
            return collections.OrderedDict
        if module == "torch" or module.startswith("torch."):
            return _TorchPlaceholder
        raise pickle.UnpicklingError(f"{module}.{name} is not plain state")

    def persistent_load(self, pid: object) -> None:
        return None


def check_resumable(saved_identity: dict, identity: dict, path: str | Path) -> None:
    """Raise CheckpointMismatch naming every setting that differs between checkpoint and request."""
    keys = sorted(set(saved_identity) | set(identity))
    differences = [f"{key}: {saved_identity.get(key)!r} in the checkpoint, {identity.get(key)!r} requested"
                   for key in keys if saved_identity.get(key) != identity.get(key)]
    if differences:
        raise CheckpointMismatch(
            f"{path} was written by a run with different settings ({'; '.join(differences)}). "
            "Restore those settings to resume it, or delete the checkpoint to start this run over.")


def save_sessions(path: str | Path, identity: dict, sessions: list[dict]) -> None:
    """Write ``{"identity", "sessions"}`` to ``path`` (atomically)."""
    write_json(path, {"identity": identity, "sessions": sessions})


def load_sessions(path: str | Path, identity: dict) -> list[dict] | None:
    """The sessions ``path`` lists for a run of ``identity``; None when there is no such file, when it was written for
    another identity (a run of other settings, given up, worked in the folder) or is unreadable (both logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = read_json_object(path, "run's sessions file")
        if saved.get("identity") != json.loads(json.dumps(identity)):  # as JSON holds it: tuples are lists
            log.info("%s lists the sessions of a run with other settings or input files; this run starts its own",
                     path)
            return None
        return saved["sessions"]
    except (OSError, ValueError, KeyError) as error:
        log.warning("%s is unreadable (%s); the run's sessions are taken from its state file", path, error)
        return None
