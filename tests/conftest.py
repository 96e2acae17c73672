"""Shared fixtures: repository paths, the offline real-data folder, a tiny prepared dataset, a local HTTP server, the
figures a test's plots drew."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo (profiles/demo) run end to end once, in a folder of its own, for every test that reads its outputs."""
    workdir = tmp_path_factory.mktemp("demo")
    run_snakemake("--workflow-profile", "profiles/demo", "--directory", str(workdir))
    return workdir


def require_root_and_apt(what: str) -> None:
    """Skip the test unless it may install Debian packages (root, apt-get); ``what`` says what it would install."""
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (apt-get install)")
    if shutil.which("apt-get") is None:
        pytest.skip(f"{what} needs apt-get (Debian or Ubuntu)")


def installed_packages() -> set[str]:
    """The Debian packages installed now."""
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n"], capture_output=True,
                           text=True)
    return {line.split()[0] for line in query.stdout.splitlines() if line.endswith(" installed")}


def purge_packages_added_since(before: set[str]) -> None:
    """Remove every Debian package installed since ``before`` (a test leaves the system as it found it)."""
    added = sorted(installed_packages() - before)
    if added:
        subprocess.run(["apt-get", "purge", "-y", "-q", *added], timeout=600, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def train_script_command(data: Path, run_dir: Path, settings: dict, *extra: str) -> list[str]:
    """workflow_scripts/train.py on ``data`` into ``run_dir``: ``settings`` as key=value arguments, then ``extra``."""
    return [sys.executable, str(REPO / "workflow_scripts/train.py"), "--data", str(data), "--run-dir", str(run_dir),
            *(f"{key}={json.dumps(value)}" for key, value in settings.items()), *extra]


def killed_and_resumed(command: Callable[[Path], list[str]], root: Path) -> tuple[dict, dict]:
    """Run ``command(run_dir)`` uninterrupted in ``root/reference``; in ``root/resumed`` SIGKILL it once its second
    epoch's checkpoint is written, then rerun it. Check that the resumed run ends bit-identical (metrics, loss
    curve, weights) and says where it resumed; return the two records (reference, resumed)."""
    import torch

    from compresslib.io import load_torch

    reference_dir, resumed_dir = root / "reference", root / "resumed"
    subprocess.run(command(reference_dir), check=True, capture_output=True)

    process = subprocess.Popen(command(resumed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoint = resumed_dir / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if checkpoint.exists() and load_torch(checkpoint)["next_epoch"] >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (resumed_dir / "record.json").exists()  # killed mid-run: nothing looks finished
    assert load_torch(checkpoint)["next_epoch"] in (2, 3)

    subprocess.run(command(resumed_dir), check=True, capture_output=True)
    reference = json.loads((reference_dir / "record.json").read_text())
    resumed = json.loads((resumed_dir / "record.json").read_text())
    assert resumed["timing"]["resumed_from_epoch"] in (2, 3)
    sessions = resumed["timing"]["sessions"]  # one per process that worked on the run
    assert [s["start_epoch"] for s in sessions] == [0, resumed["timing"]["resumed_from_epoch"]]
    assert sessions[0]["started_at"] <= sessions[1]["started_at"] and sessions[1]["device"] == "cpu"
    assert [s["start_epoch"] for s in reference["timing"]["sessions"]] == [0]
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["curve"]["train_loss"] == reference["curve"]["train_loss"]
    weights = load_torch(resumed_dir / "model.pt")["state_dict"]
    for key, value in load_torch(reference_dir / "model.pt")["state_dict"].items():
        assert torch.equal(value, weights[key]), key
    assert not checkpoint.exists()  # removed once the outputs are complete
    left = [path.name for path in resumed_dir.rglob("*") if path.name.endswith(".tmp") or path.name == ".lock"]
    assert not left, f"the resumed run left {left}"  # the killed writer's temporary files are gone too
    return reference, resumed


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


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The figures a test draws, by their file's path (each file is still written)."""
    from compresslib import plots  # matplotlib: only the plot tests need it

    drawn = {}
    save = plots.save

    def keep(figure, out_path) -> None:
        save(figure, out_path)  # first: a figure's tick labels exist once it is drawn
        drawn[Path(out_path)] = figure

    monkeypatch.setattr(plots, "save", keep)
    return drawn


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module's tests (tiny networks run faster, and identically, on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
