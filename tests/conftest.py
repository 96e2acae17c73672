"""Shared fixtures: repository paths, the offline real-data folder, a tiny prepared dataset, a local HTTP server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real-data sample {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus /short/<file> (announces the full length, sends half) and /stall/<file> (never answers)."""

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):
            payload = (Path(self.directory) / self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
        elif self.path.startswith("/stall/"):
            self.server.release.wait()
        else:
            super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep test output free of access logs
        pass


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving ``directory`` (no outside network), stopped on exit."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(directory)))
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def run_snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """Run this environment's snakemake from the repository root; return the finished process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.run([str(SNAKEMAKE), *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and process.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({process.returncode}):\n"
                             f"{process.stdout[-4000:]}\n{process.stderr[-4000:]}")
    return process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the SLURM cluster test last: it is the longest, and it installs and removes system packages."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic dataset small enough for unit-test training runs (512 train / 256 test)."""
    from compresslib.data.datasets import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "dataset.pt"
    prepare_dataset("synthetic", path, synthetic={"train_size": 512, "test_size": 256, "seed": 3})
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module's tests (tiny networks run faster, and identically, on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
