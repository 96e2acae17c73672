"""The rolling per-epoch checkpoint of a run directory, and the strict resume check.

``checkpoint.pt`` holds plain state only (state_dicts, numbers, lists): model, optimiser, schedule
state, the history so far (the best epoch is read off it), the best epoch's weights when the run
selects the best model, one entry per job that worked on the run (``sessions``), the next epoch to
run and the spec identity that produced it. It is rewritten atomically after every epoch and deleted once the run's outputs are complete. Randomness
needs no saved state: every epoch reseeds from ``(seed, epoch)``.
"""

from __future__ import annotations

from pathlib import Path

from compresslib.io import load_versioned, save_torch

__all__ = ["CHECKPOINT_NAME", "CheckpointMismatch", "save_checkpoint", "load_checkpoint", "check_resumable"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2


class CheckpointMismatch(ValueError):
    """The checkpoint in a run directory was written for a different configuration."""


def save_checkpoint(run_dir: str | Path, state: dict) -> None:
    save_torch(Path(run_dir) / CHECKPOINT_NAME, {"format": CHECKPOINT_FORMAT, **state})


def load_checkpoint(run_dir: str | Path) -> dict | None:
    """The run directory's checkpoint, or None when there is none."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    return load_versioned(path, CHECKPOINT_FORMAT, "compresslib checkpoint", "delete it to start the run over")


def check_resumable(saved_identity: dict, identity: dict, path: str | Path) -> None:
    """Raise CheckpointMismatch naming every setting that differs between checkpoint and request."""
    keys = sorted(set(saved_identity) | set(identity))
    differences = [f"{key}: {saved_identity.get(key)!r} in the checkpoint, {identity.get(key)!r} requested"
                   for key in keys if saved_identity.get(key) != identity.get(key)]
    if differences:
        raise CheckpointMismatch(
            f"{path} was written by a run with different settings ({'; '.join(differences)}). "
            "Restore those settings to resume it, or delete the checkpoint to start this run over.")
