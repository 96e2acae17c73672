"""A run folder's rolling state file (``checkpoint.pt``; an ESNAC search's ``search-state.pt``) and the strict
resume check.

The state holds plain state only (state_dicts, numbers, lists): what the job needs to continue (a training run:
model, optimisers, schedule state, the history so far, the best epoch's weights when it selects them, the next
epoch; a search: every evaluated candidate and the pending proposals), the identity that produced it (the settings
and the checksums of the run's input files), and ``sessions``, one entry per process that worked on the run.
It is rewritten atomically after every unit of progress and deleted once the run's outputs are complete. It carries
its own checksums (the CRC32 torch records for each of its members), checked before it is loaded.
Randomness needs no saved state: every epoch (or search step) reseeds from ``(seed, epoch)``.
"""

from __future__ import annotations

from pathlib import Path

from compresslib.io import load_versioned, save_torch

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "CheckpointMismatch", "save_checkpoint", "load_checkpoint",
           "check_resumable"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 3  # 3: one layout for every job kind (identity, sessions, then the job's own state)


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


def check_resumable(saved_identity: dict, identity: dict, path: str | Path) -> None:
    """Raise CheckpointMismatch naming every setting that differs between checkpoint and request."""
    keys = sorted(set(saved_identity) | set(identity))
    differences = [f"{key}: {saved_identity.get(key)!r} in the checkpoint, {identity.get(key)!r} requested"
                   for key in keys if saved_identity.get(key) != identity.get(key)]
    if differences:
        raise CheckpointMismatch(
            f"{path} was written by a run with different settings ({'; '.join(differences)}). "
            "Restore those settings to resume it, or delete the checkpoint to start this run over.")
