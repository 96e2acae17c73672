"""The GPU check (python -m compresslib.bench gpu-check): the whole command at its tiny size on the CPU, every row with
its numbers and their arithmetic; the preflight against constraints.txt; rows that fail say so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from compresslib.bench import gpu_check, preflight
from compresslib.bench.__main__ import main
from compresslib.bench.grid import load_grid

from conftest import REPO

# tiny on the CPU: nothing compiles (b: eager only), the demo's teacher runs online (a: no views table)
ROWS = {"a": 2, "b": 4, "c": 2, "d": 4, "e": 15, "f": 1, "g": 1}


def test_the_tiny_check_runs_every_row_end_to_end(tmp_path: Path):
    out = tmp_path / "check.json"
    process = subprocess.run([sys.executable, "-m", "compresslib.bench", "gpu-check", "--size", "tiny", "--device",
                              "cpu", "--slots", "2", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    printed = [line for line in process.stdout.splitlines() if re.match(r"[a-g]   ", line)]
    assert {letter: sum(line.startswith(letter) for line in printed) for letter in ROWS} == ROWS
    result = json.loads(out.read_text())
    for line, row in zip(printed, result["rows"], strict=True):  # each printed row has its number
        assert re.search(r"\d", row["figure"]) and f" {row['figure']} " in line
    assert result["settings"] == {"device": "cpu", "size": "tiny", "compile": False, "slots": 2,
                                  "workers": gpu_check.preparing_processes(), "seed": 0}
    assert result["hardware"]["device_type"] == "cpu" and result["software"]["packages"]["torch"]
    assert {package["status"] for package in result["preflight"]} <= {"ok", "differs"}
    assert set(result["stage_seconds"]) == {"preflight", "measurements", "workflow (meanwhile)", "grid estimate"}
    rows = {letter: [row for row in result["rows"] if row["row"] == letter] for letter in ROWS}
    assert not [row for row in result["rows"] if row["verdict"] == "FAILED"]
    measured = result["measurements"]
    for row in rows["a"]:  # the device is the CPU: each job is its own CPU figure
        assert row["values"]["test_acc"] == row["values"]["cpu_test_acc"] and row["verdict"] == "ok"
    for row in rows["b"]:
        values = row["values"]
        assert values["speedup"] == pytest.approx(values["images_per_s"] / values["reference_images_per_s"])
    conv = {key.split("/", 1)[1]: m for key, m in measured.items() if key.startswith("conv/")}
    assert rows["c"][0]["values"]["kd_cached_over_ce"] == pytest.approx(
        conv["ce/resident/eager"]["images_per_s"] / conv["kd/resident_cached/eager"]["images_per_s"])
    build = rows["d"][0]["values"]["table_build_s"]
    assert build == pytest.approx(conv["views"]["seconds"] * 50_000)  # timed on one image, scaled to CIFAR's 50,000
    online, cached = (conv[f"kd/{path}/eager"]["images_per_s"] for path in ("resident", "resident_cached"))
    saved = 50_000 / online - 50_000 / cached
    assert rows["d"][1]["values"]["break_even_epochs"] == (pytest.approx(build / saved) if saved > 0 else None)
    for row in rows["e"]:  # a CIFAR-10 epoch: 50,000 images trained, 10,000 evaluated; nothing compiled
        values = row["values"]
        assert values["epoch_s"] == pytest.approx(50_000 / values["train_images_per_s"]
                                                  + 10_000 / values["eval_images_per_s"])
        assert values["compile_s"] == 0 and values["compile"] == "off"
    speedup = rows["f"][0]["values"]["speedup"]
    assert speedup == pytest.approx(result["concurrency"]["together_images_per_s"]
                                    / result["concurrency"]["alone_images_per_s"])
    # g: 5 seeds of each of the 15 cells, 200 epochs each, every one a student that shares a GPU
    grid = rows["g"][0]["values"]
    job_seconds = sum(5 * 200 * row["values"]["epoch_s"] for row in rows["e"])
    assert grid["jobs"] == 75 and grid["epochs"] == 75 * 200
    assert grid["job_hours"] == pytest.approx(job_seconds / 3600)
    assert grid["gpu_hours"] == pytest.approx(grid["job_hours"] / speedup)


def test_the_grid_is_config_yamls_lma_cifar10_experiment():
    _, cells = load_grid()
    assert [cell.label for cell in cells[:5]] == ["conv-s0 relu", "conv-s0 prelu", "conv-s0 swish", "conv-s0 aplu8",
                                                  "conv-s0 lma8"]
    assert {cell.pair.student for cell in cells} == {"qd_conv_student0", "qd_conv_student1", "qd_conv_student2"}
    assert all(cell.pair.teacher == "qd_conv_teacher" and cell.pair.batch_size == 64 and cell.cached for cell in cells)
    assert cells[4].pair.student_kwargs == {"activation": "lma8"} and len(cells[4].jobs) == 5


def _constraints(tmp_path: Path) -> Path:
    path = tmp_path / "constraints.txt"
    path.write_text("# pins\ntorch==0.0.1\nno-such-dist==1.0\nbroken_dist==2.0\n")
    return path


def _with_fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Required: torch (installed, pinned at another version), a missing package and one whose import fails."""
    (tmp_path / "gpu_check_broken_module.py").write_text("raise ImportError('built for another torch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(preflight, "REQUIRED", {"torch": "torch", "no-such-dist": "no_such_module_for_the_check",
                                                "broken_dist": "gpu_check_broken_module"})


def test_the_preflight_checks_every_declared_dependency_the_check_imports():
    code = ("import json, sys; import compresslib.bench.__main__, compresslib.bench.gpu_check; "  # and the scripts'
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")  # compresslib.training
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout)
    distributions = metadata.packages_distributions()
    imported = {_normalized(dist) for module in loaded for dist in distributions.get(module, [])}
    declared = {_normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group())
                for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    checked = {_normalized(name) for name in preflight.REQUIRED | preflight.COMPILER}
    assert imported & declared and imported & declared <= checked


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_preflight_tells_missing_broken_and_differing_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _with_fake_packages(tmp_path, monkeypatch)
    constraints = _constraints(tmp_path)
    packages = preflight.check(cuda=False, constraints=constraints)
    assert {p.name: p.status for p in packages} == {"torch": "differs", "no-such-dist": "missing",
                                                    "broken_dist": "broken"}
    assert [p.name for p in preflight.check(cuda=True, constraints=constraints)][-1] == "triton"
    blocking = preflight.blocking(packages)
    assert preflight.pip_command(blocking, constraints, tmp_path / "wheels") == [
        sys.executable, "-m", "pip", "install", "-c", str(constraints), "--no-index", "--find-links",
        str(tmp_path / "wheels"), "no-such-dist", "broken_dist"]
    report = preflight.format_report(packages, constraints)
    assert "broken_dist    broken (ImportError: built for another torch); pinned 2.0" in report
    assert f"to install what is missing: {sys.executable} -m pip install -c {constraints} no-such-dist broken_dist" \
        in report
    assert f"to match the pins too: {sys.executable} -m pip install -c {constraints} torch" in report


def test_a_missing_package_stops_the_check_or_is_installed_and_the_check_restarted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    _with_fake_packages(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as stop:
        main(["gpu-check", "--device", "cpu", "--size", "tiny"])
    assert stop.value.code == 2 and "pip install -c" in capsys.readouterr().out
    calls = []
    monkeypatch.setattr(preflight, "install", lambda packages, wheels: calls.append(
        ([p.name for p in packages], wheels)))

    def restart(executable: str, arguments: list[str]) -> None:
        calls.append(arguments)
        raise SystemExit(0)  # execv never returns

    monkeypatch.setattr(os, "execv", restart)
    with pytest.raises(SystemExit):
        main(["gpu-check", "--device", "cpu", "--install", "--wheels", str(tmp_path)])
    assert calls == [(["no-such-dist", "broken_dist"], tmp_path),
                     [sys.executable, "-m", "compresslib.bench", "gpu-check", "--device", "cpu", "--wheels",
                      str(tmp_path)]]


def test_failed_jobs_and_measurements_are_failed_rows():
    cpu = {"ok": True, "seconds": 30.0, "test_acc": 0.80}
    workflow = {"jobs": [
        {"role": "teacher", "name": "t", "device": {"ok": True, "seconds": 9.0, "test_acc": 0.77}, "cpu": cpu},
        {"role": "student", "name": "s", "device": {"ok": True, "seconds": 9.0, "test_acc": 0.10}, "cpu": cpu},
        {"role": "student", "name": "s2", "device": {"ok": False, "error": "exit code 1: CUDA error"}, "cpu": cpu}]}
    rows = gpu_check._workflow_rows(workflow)
    assert [row["verdict"] for row in rows] == ["ok", "FAILED", "FAILED"]  # 0.03 below the CPU is within 0.05
    assert rows[1]["against"].startswith("cpu acc 0.800: -0.700") and rows[2]["against"] == "exit code 1: CUDA error"
    study, cells = load_grid()
    measured = {f"grid/{cell.label}/{part}": {"error": "RuntimeError: out of memory"}
                for cell in cells for part in ("train", "eval")}
    grid = gpu_check._grid(study, cells, measured, {"speedup": 2.0})
    assert grid["estimate"] == {"error": "conv-s0 relu: RuntimeError: out of memory"}
    assert {row["verdict"] for row in gpu_check._grid_rows(cells, grid)} == {"FAILED"}


def test_the_full_size_refuses_the_cpu():
    with pytest.raises(ValueError, match="--size full is sized for a GPU"):
        main(["gpu-check", "--device", "cpu"])
