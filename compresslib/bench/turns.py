"""Speed measurements prepared side by side in worker processes, then timed one at a time or several at once.

Preparing a measurement (building its models, compiling them, warming up: :func:`compresslib.bench.speed.prepare`)
is mostly CPU work, which spreads over processes; a timed span needs the device to itself, or shared on purpose. So
worker processes (started with ``spawn``) each prepare their group of tasks and report ready; once all are, the
parent has them time the tasks batch after batch as a schedule lists them: a batch's tasks at once (each in its own
worker: jobs sharing a GPU), every other worker waiting idle. Workers run torch on one thread, as the workflow's
jobs do. A failure is a result: the task says why, and the others go on.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TypeVar

from compresslib.bench.pairs import Pair
from compresslib.bench.speed import Measurement, SpeedSettings, prepare
from compresslib.cli import error_summary

__all__ = ["Task", "deal", "run_tasks", "failure"]

T = TypeVar("T")
# One worker prepares several models of one class, each with graphs of its own (train and eval mode); past dynamo's
# default of 8 graphs per function the rest would quietly run eager
RECOMPILE_LIMIT = 64


@dataclass(frozen=True)
class Task:
    key: str  # names the result
    measurement: Measurement
    settings: SpeedSettings
    pair: Pair
    scratch: str  # the folder holding the views table a cached KD measurement reads


def failure(error: BaseException | str) -> dict:
    """The result of a task that failed: ``{"error": <type>: <first line>}``."""
    if isinstance(error, str):
        return {"error": error}
    return {"error": error_summary(error)}


def deal(tasks: Sequence[Task], workers: int) -> list[list[Task]]:
    """``tasks`` dealt round-robin into at most ``workers`` groups (so each group holds a mix of them)."""
    return [list(tasks[start::workers]) for start in range(min(workers, len(tasks)))]


def run_tasks(groups: Sequence[Sequence[Task]], schedule: Sequence[Sequence[str]], compile_threads: int = 0,
              while_preparing: Callable[[], T] | None = None) -> tuple[dict[str, dict], T | None]:
    """Prepare each group of tasks in a worker process of its own, running ``while_preparing`` here meanwhile; then
    time the tasks batch by batch as ``schedule`` lists their keys (a batch's tasks at once: one per worker at most).
    Returns every task's figures by key, with ``started`` and ``ended`` (``time.monotonic``, which the processes of a
    machine share) or ``{"error": ...}``, and what ``while_preparing`` returned."""
    with _started(groups, compile_threads) as pool:
        extra = while_preparing() if while_preparing is not None else None
        results = pool.wait_ready()
        for batch in schedule:
            results |= pool.time([key for key in batch if key not in results])
    return results, extra


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    tasks: list[Task]

    def receive(self) -> object:
        """The worker's next message, or a failure if its process ended instead."""
        wait([self.connection, self.process.sentinel])
        if self.connection.poll():
            try:
                return self.connection.recv()
            except EOFError:
                pass
        return self.ended()

    def ended(self) -> dict:
        self.process.join(timeout=5)
        return failure(f"worker process ended (exit code {self.process.exitcode}: killed, out of memory?)")


class _Pool:
    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers
        self.owner = {task.key: worker for worker in workers for task in worker.tasks}

    def wait_ready(self) -> dict[str, dict]:
        """Wait until every worker has prepared its tasks; the failed tasks' results (a dead worker's: all of its)."""
        failed = {}
        for worker in self.workers:
            message = worker.receive()
            if isinstance(message, dict) and "error" in message:  # the process died: none of its tasks can run
                failed |= {task.key: message for task in worker.tasks}
                continue
            failed |= message  # the tasks whose preparation failed
        return failed

    def time(self, keys: list[str]) -> dict[str, dict]:
        """Have the tasks' workers time them, all at once (one task per worker), and wait for every result."""
        sent, results = [], {}
        for key in keys:
            try:
                self.owner[key].connection.send(key)
                sent.append(key)
            except OSError:  # its worker has ended, in an earlier task
                results[key] = self.owner[key].ended()
        return results | {key: self.owner[key].receive() for key in sent}


@contextmanager
def _started(groups: list[list[Task]], compile_threads: int) -> Iterator[_Pool]:
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        for group in groups:
            parent_end, child_end = context.Pipe()
            # not a daemon: the reference's DataLoader starts worker processes of its own
            process = context.Process(target=_work, args=(list(group), child_end, compile_threads))
            process.start()
            child_end.close()
            workers.append(_Worker(process, parent_end, group))
        yield _Pool(workers)
    finally:
        for worker in workers:
            if worker.process.is_alive():
                try:
                    worker.connection.send(None)  # done: the worker returns
                except OSError:
                    pass
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


def _work(tasks: list[Task], connection: Connection, compile_threads: int) -> None:
    """A worker: prepare every task, send ``{key: failure}`` for those that failed, then time the task whose key
    arrives (sending its figures, with ``started`` and ``ended``) until ``None`` arrives."""
    _configure_torch(compile_threads)
    prepared: dict[str, Callable[[], dict]] = {}
    failed = {}
    for task in tasks:
        try:
            prepared[task.key] = prepare(task.measurement, task.settings, task.scratch, task.pair)
        except Exception as error:  # a measurement that cannot run is a result, not the end of the check
            failed[task.key] = failure(error)
    connection.send(failed)
    while (key := connection.recv()) is not None:
        started = time.monotonic()
        try:
            result = prepared.pop(key)() | {"started": started, "ended": time.monotonic()}
        except Exception as error:
            result = failure(error)
        connection.send(result)


def _configure_torch(compile_threads: int) -> None:
    import torch
    import torch._dynamo.config
    import torch._inductor.config

    torch.set_num_threads(1)  # as the workflow's jobs run (their rules' threads: 1), and workers do not crowd the cores
    torch._dynamo.config.recompile_limit = RECOMPILE_LIMIT
    torch._dynamo.config.fail_on_recompile_limit_hit = True  # never eager under a "compiled" label
    if compile_threads:  # the workers compile side by side: share the cores out
        torch._inductor.config.compile_threads = compile_threads
