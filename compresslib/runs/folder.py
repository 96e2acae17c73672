"""A run folder has one owner: the process running the job holds its lock for the whole run, finds out before any
work that it can write there, removes what killed runs left behind, and replaces a finished run only when told to.

The lock is an advisory POSIX lock (``fcntl.lockf``, which NFS passes on to its lock manager) on ``.lock`` in the run
folder; the file names its holder (host, pid, start time) for the message a second process gets. The holder deletes
it when it is done; a process that locked a file deleted under it tries again on the new one.

A finished run also keeps hard links to its record and outputs in ``.finished/`` (no extra space while the outputs
exist), with what it was made from: its identity (settings and input checksums), the checksum of the code that ran
and of every file. Snakemake deletes a job's outputs before it runs the job again, also when it never recorded the
finished job (a ``kill -INT`` of Snakemake alone lets running jobs finish but records none of them; a Snakemake that
died while its cluster jobs ran records none either) and so marks its outputs incomplete. The rerun of such a job
finds the same identity and code, checks every file, and links them back instead of training again. A job Snakemake
did record (one rerun on purpose, ``--forcerun``) runs again.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from compresslib import provenance
from compresslib.io import checksum_path, read_json_object, sha256_file, temporaries, write_json
from compresslib.runs.record import RECORD_NAME

__all__ = ["LOCK_NAME", "FINISHED_DIR", "RunFolderInUse", "FinishedRunExists", "owned_folder", "remove_leftovers",
           "remove_run", "keep_finished", "restore_finished", "snakemake_recorded"]

LOCK_NAME = ".lock"
FINISHED_DIR = ".finished"
_MADE_FROM = "made-from.json"  # in FINISHED_DIR: identity, code and file checksums

log = logging.getLogger(__name__)


class RunFolderInUse(OSError):
    """Another process holds the run folder's lock."""


class FinishedRunExists(FileExistsError):
    """The run folder holds a finished run, and the job was not told to replace it."""


@contextlib.contextmanager
def owned_folder(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` and hold its lock for the block; RunFolderInUse naming the holder when another process has
    it, an OSError naming the folder when it cannot be written (read-only, permission, no space). A folder it made
    is removed again when the block leaves it empty (a job refused on its inputs leaves nothing)."""
    lock_path, created = run_dir / LOCK_NAME, not run_dir.exists()
    handle = None
    try:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            handle = _locked(lock_path)
            os.ftruncate(handle, 0)  # the holder's line, also the check that the folder takes writes
            os.write(handle, f"pid {os.getpid()} on host {socket.gethostname()} since {provenance.now_iso()}\n"
                     .encode())
        except RunFolderInUse:
            raise
        except OSError as error:
            raise OSError(error.errno, f"cannot write in the run folder: {error.strerror}", str(run_dir)) from error
        yield
    finally:
        if handle is not None:
            lock_path.unlink(missing_ok=True)  # still locked: a process waiting on this file retries on a new one
            os.close(handle)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run's files stay
                run_dir.rmdir()


def _locked(lock_path: Path) -> int:
    """An open descriptor of ``lock_path`` holding its lock."""
    while True:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EAGAIN):  # those two: someone holds it
                os.close(handle)
                raise
            holder = os.pread(handle, 4096, 0).decode(errors="replace").strip() or "a process that has not said"
            os.close(handle)
            raise RunFolderInUse(f"{lock_path.parent} is in use by another run ({holder}): wait for it to finish, "
                                 "or stop it, before running this job there") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock_path).st_ino == os.fstat(handle).st_ino:
                return handle
        os.close(handle)  # the holder deleted the file as it finished: lock the new one


def remove_leftovers(run_dir: Path, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files killed writers left for ``names`` (the run's files and folders) and inside its
    folders; returns them."""
    leftovers = []
    for name in names:
        path = run_dir / name
        leftovers += temporaries(path)  # its checksum file's too: `.<name>.sha256.*.tmp` matches
        if path.is_dir():
            leftovers += sorted(path.rglob(".*.tmp"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def remove_run(run_dir: Path, names: Iterable[str], overwrite: bool) -> bool:
    """Remove a finished run's record (first: the folder no longer looks finished), then its ``names`` and their
    checksums, when ``overwrite`` (which also drops a kept run); FinishedRunExists otherwise. False when the folder
    holds no finished run."""
    record = run_dir / RECORD_NAME
    if overwrite:
        shutil.rmtree(run_dir / FINISHED_DIR, ignore_errors=True)
    if not record.exists():
        return False
    if not overwrite:
        raise FinishedRunExists(f"{run_dir} holds a finished run ({record}); pass --overwrite to replace it with this "
                                "one, or choose another run folder")
    record.unlink()
    for name in names:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
            checksum_path(path).unlink(missing_ok=True)
    return True


def keep_finished(run_dir: Path, names: Iterable[str], made_from: dict) -> None:
    """Link the finished run's record and its ``names`` (and their checksum files) into ``.finished/`` with
    ``made_from`` and where each file goes. The links are named by their sha256 (no ``record.json`` or ``model.pt``
    there for a search of the results to find twice). A file system without hard links keeps nothing (logged)."""
    kept = run_dir / FINISHED_DIR
    shutil.rmtree(kept, ignore_errors=True)
    files = {str(path.relative_to(run_dir)): path for name in (*names, RECORD_NAME) for path in _files(run_dir / name)}
    digests = {name: sha256_file(path) for name, path in files.items()}
    try:
        kept.mkdir()
        for name, path in files.items():
            if not (kept / digests[name]).exists():  # files of the same bytes share one link
                os.link(path, kept / digests[name])
    except OSError as error:
        log.warning("%s: cannot keep hard links of the finished run (%s); a rerun after its outputs are deleted "
                    "trains it again", run_dir, error)
        shutil.rmtree(kept, ignore_errors=True)
        return
    write_json(kept / _MADE_FROM, {**made_from, "files": digests})


def restore_finished(run_dir: Path, made_from: dict) -> bool:
    """Link the run kept in ``.finished/`` back into place when the folder holds no record, Snakemake never recorded
    the job that wrote it, it was made from ``made_from`` and every kept file is whole; the files are touched (made
    now, for Snakemake). Else remove what is kept (it describes no run this folder will hold) and return False."""
    kept = run_dir / FINISHED_DIR
    if not kept.is_dir() or (run_dir / RECORD_NAME).exists():
        return False
    if snakemake_recorded(run_dir / RECORD_NAME):  # a finished job run again on purpose
        shutil.rmtree(kept, ignore_errors=True)
        return False
    try:
        saved = read_json_object(kept / _MADE_FROM, "finished run's description")
        files = saved.pop("files")
        whole = saved == json.loads(json.dumps(made_from)) and all(
            sha256_file(kept / sha256) == sha256 for sha256 in set(files.values()))
    except (OSError, ValueError, KeyError):
        whole = False
    if not whole:
        shutil.rmtree(kept, ignore_errors=True)
        return False
    for name in sorted(files, key=lambda name: name == RECORD_NAME):  # the record last: then the run is finished
        target = run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        link = target.with_name(f".{target.name}.restored.tmp")  # a leftover a killed restore leaves is cleaned
        os.link(kept / files[name], link)
        os.replace(link, target)
        os.utime(target)
    log.info("%s: restored the finished run kept in %s (same settings, input files and code; every file checked)"
             "; delete %s to train it again", run_dir, kept, kept)
    return True


def snakemake_recorded(output: Path) -> bool:
    """Whether the Snakemake working in this directory recorded the job of ``output`` (a path as the rule names it)
    as finished. Snakemake (its default file persistence) writes ``.snakemake/metadata/<urlsafe base64 of the path>``
    when a job completes, the name split into folders of at most NAME_MAX - 1 characters, all but the last prefixed
    with ``@``; nothing when it was stopped, or died, while the job finished."""
    metadata = Path(".snakemake", "metadata")
    if not metadata.is_dir():
        return False
    step = (os.pathconf(metadata, "PC_NAME_MAX") or 255) - 1
    encoded = base64.urlsafe_b64encode(str(output).encode()).decode()
    parts = [encoded[start:start + step] for start in range(0, len(encoded), step)]
    return metadata.joinpath(*("@" + part for part in parts[:-1]), parts[-1]).is_file()


def _files(path: Path) -> list[Path]:
    """The file ``path`` and its checksum file, or the files in the folder ``path``; those that exist."""
    if path.is_dir():
        return sorted(child for child in path.rglob("*") if child.is_file())
    return [candidate for candidate in (path, checksum_path(path)) if candidate.is_file()]
