"""ESNAC's search (seeds.md §3.5-3.6): the reward against the README's table, a miniature search with both
strategies (outputs, rewards, top architectures, determinism), SIGKILL-and-resume, and the refusals."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from compresslib.data.datasets import load_dataset, prepare_dataset
from compresslib.data.loader import holdout_split
from compresslib.esnac import search as search_module
from compresslib.esnac.search import SEARCH_COLUMNS, reward, search
from compresslib.esnac.space import Action, compress, extract_graph, parameter_count
from compresslib.specs.esnac import SEARCH_STATE, KernelSpec, SearchSpec
from compresslib.io import DamagedFile, load_torch
from compresslib.models import count_parameters, create_model, load_model, save_model
from compresslib.runs.checkpoint import CheckpointMismatch
from conftest import REPO

NORMALIZATION = {"mean": [0.5] * 3, "std": [0.25] * 3}
HOLDOUT = 128
STEPS, CANDIDATES = 2, 2


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread is faster and repeatable


def _spec(**changes) -> SearchSpec:
    values = dict(dataset="synthetic", strategy="esnac", steps=STEPS, candidates_per_step=CANDIDATES,
                  acquisition_samples=20, top_k=2, epochs=2, batch_size=64, holdout_size=HOLDOUT,
                  kernel=KernelSpec(max_steps=5), device="cpu")
    return SearchSpec(**{**values, **changes})


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """The loader's normalisation, (x / 255 - mean) / std, folded the same way."""
    mean = torch.tensor(NORMALIZATION["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(NORMALIZATION["std"]).view(1, -1, 1, 1)
    return images.float() * (1.0 / (255.0 * std)) + (-mean / std)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The synthetic dataset and a resnet10 (width 8) teacher trained briefly with Adam on the search split."""
    root = tmp_path_factory.mktemp("esnac_search")
    data = root / "data.pt"
    prepare_dataset("synthetic", data, synthetic={"train_size": 512, "test_size": 256, "seed": 3})
    dataset = load_dataset(data)
    inputs, labels = dataset["train_inputs"], dataset["train_labels"]
    keep, held_out = holdout_split(len(labels), HOLDOUT, 0, "last")
    torch.manual_seed(0)
    teacher = create_model("resnet10", num_classes=10, width=8)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    teacher.train()
    for epoch in range(3):
        order = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(epoch))]
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            loss = torch.nn.functional.cross_entropy(teacher(_normalise(inputs[batch])), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    teacher.eval()
    path = root / "teacher.pt"
    kwargs = {"num_classes": 10, "activation": "relu", "width": 8}
    save_model(path, teacher, "resnet10", kwargs, extra={"dataset": "synthetic", "normalization": NORMALIZATION})
    return {"root": root, "data": data, "teacher": path, "model": teacher, "inputs": inputs[held_out],
            "labels": labels[held_out]}


def _accuracy(model: torch.nn.Module, env: dict) -> float:
    with torch.no_grad():
        return (model.eval()(_normalise(env["inputs"])).argmax(1) == env["labels"]).sum().item() / HOLDOUT


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "search.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _header(run_dir: Path) -> list[str]:
    with open(run_dir / "search.csv", newline="") as handle:
        return next(csv.reader(handle))


def _without_train_seconds(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in _rows(run_dir)]


def _run(env: dict, name: str, **changes) -> tuple[Path, dict]:
    run_dir = env["root"] / name
    return run_dir, search(_spec(**changes), env["data"], env["teacher"], run_dir)


@pytest.fixture(scope="module")
def runs(env) -> dict:
    """An esnac search (twice, into two directories) and a random search with the same budget."""
    return {"esnac": _run(env, "esnac"), "esnac_again": _run(env, "esnac_again"),
            "random": _run(env, "random", strategy="random")}


# --- the reward -------------------------------------------------------------------------------------------------

# seeds.md §3.9 (CIFAR-100) with the teacher accuracies of stat.py and the computed CIFAR-100 parameter counts
ESNAC_TABLE = [
    ("vgg19", 20_086_692, 0.8470, 71.64, 73.71, 0.9492),
    ("resnet18", 11_220_132, 0.8876, 71.91, 78.68, 0.9024),
    ("resnet34", 21_328_292, 0.8664, 75.47, 78.71, 0.9417),
    ("shufflenet_g2", 1_059_960, 0.8298, 68.17, 71.14, 0.9305),
]


@pytest.mark.parametrize(("teacher", "teacher_params", "ratio", "acc", "teacher_acc", "expected"), ESNAC_TABLE)
def test_reward_reproduces_esnacs_table(teacher, teacher_params, ratio, acc, teacher_acc, expected):
    params = round((1 - ratio) * teacher_params)
    compression, value = reward(params, teacher_params, acc, teacher_acc)
    assert compression == pytest.approx(ratio, abs=1e-4)
    assert value == pytest.approx(expected, abs=1e-4)
    # exact form: c(2 - c) a, for a c that is exact in binary
    assert reward(750, 1000, 0.6, 0.8) == (0.25, pytest.approx(0.25 * 1.75 * 0.75, rel=1e-15))
    assert reward(1000, 1000, 0.9, 0.9) == (0.0, 0.0)  # the teacher itself: reward 0 (the kernels' seed point)


# --- a miniature search -------------------------------------------------------------------------------------------

def test_search_writes_its_outputs(runs):
    run_dir, record = runs["esnac"]
    rows = _rows(run_dir)
    assert _header(run_dir) == list(SEARCH_COLUMNS)
    assert len(rows) == STEPS * CANDIDATES == record["candidates"]
    assert [(int(r["index"]), int(r["step"]), int(r["slot"])) for r in rows] == [(0, 0, 0), (0 + 1, 0, 1), (2, 1, 0),
                                                                              (3, 1, 1)]
    assert (run_dir / "record.json").exists() and not (run_dir / SEARCH_STATE).exists()
    assert json.loads((run_dir / "record.json").read_text())["top"] == record["top"]
    assert [entry["rank"] for entry in record["top"]] == [0, 1]
    for entry in record["top"]:
        model_file = run_dir / entry["file"]
        assert model_file.name == f"arch-{entry['rank']}.pt" and model_file.exists()
        assert model_file.with_suffix(".json").exists()
    assert record["kind"] == "esnac_search" and record["strategy"] == "esnac"
    assert len(record["timing"]["sessions"]) == 1 and record["timing"]["sessions"][0]["evaluated_before"] == 0


def test_rows_carry_consistent_rewards_and_the_top_is_the_best(runs, env):
    run_dir, record = runs["esnac"]
    rows = _rows(run_dir)
    teacher_params = count_parameters(env["model"])
    teacher_acc = _accuracy(env["model"], env)
    assert record["teacher"]["params"] == teacher_params == 78_002
    assert record["teacher"]["val_acc"] == teacher_acc > 0.1  # measured on the last 128 training images
    best = 0.0
    for row in rows:
        params, acc = int(row["params"]), float(row["val_acc"])
        compression, value = reward(params, teacher_params, acc, teacher_acc)
        assert float(row["compression"]) == compression and float(row["reward"]) == value
        assert float(row["times"]) == pytest.approx(1 / (1 - compression), rel=1e-12)
        assert 0 < params < teacher_params and 0 <= acc <= 1 and acc * HOLDOUT == round(acc * HOLDOUT)
        best = max(best, value)
        assert float(row["best_reward"]) == best
    assert record["best_reward"] == best == max(float(r["reward"]) for r in rows)
    assert record["curve"]["reward"] == [float(r["reward"]) for r in rows]
    top = record["top"]
    rewards = [entry["reward"] for entry in top]
    assert rewards == sorted(rewards, reverse=True) and rewards[0] == best
    assert sorted((float(r["reward"]) for r in rows), reverse=True)[:2] == rewards
    for entry in top:
        row = rows[entry["index"]]
        assert float(row["reward"]) == entry["reward"] and float(row["val_acc"]) == entry["val_acc"]


def test_top_architectures_reload_with_their_accuracy_and_size(runs, env):
    run_dir, record = runs["esnac"]
    graph = extract_graph(load_model(env["teacher"])[0])
    for entry in record["top"]:
        net, meta = load_model(run_dir / entry["file"])
        assert meta["name"] == "esnac_net" and meta["dataset"] == "synthetic"
        assert meta["normalization"] == NORMALIZATION and meta["kwargs"]["num_classes"] == 10
        assert count_parameters(net) == entry["params"]
        assert _accuracy(net, env) == entry["val_acc"]  # the saved weights earned the recorded accuracy
        summary = json.loads((run_dir / entry["file"]).with_suffix(".json").read_text())
        assert summary["rank"] == entry["rank"] and summary["reward"] == entry["reward"]
        architecture = compress(graph, Action.from_dict(summary["action"]))
        assert parameter_count(architecture) == entry["params"]
        assert summary["removed_layers"] == list(architecture.removed)
        assert summary["added_skips"] == [list(pair) for pair in architecture.skips]
        assert meta["kwargs"]["layers"] == architecture.model_kwargs()["layers"]
        row = _rows(run_dir)[entry["index"]]
        assert int(row["removed"]) == len(architecture.removed) and int(row["skips"]) == len(architecture.skips)


def test_esnac_rows_record_the_kernel_and_random_rows_do_not(runs):
    esnac_dir, esnac = runs["esnac"]
    random_dir, random_record = runs["random"]
    esnac_rows, random_rows = _rows(esnac_dir), _rows(random_dir)
    assert len(esnac_rows) == len(random_rows) == random_record["candidates"] == esnac["candidates"]
    for row in esnac_rows:
        assert float(row["acquisition"]) >= 0
        points, fit_steps = int(row["kernel_points"]), int(row["kernel_fit_steps"])
        if row["step"] == "0":
            assert points == 1 and fit_steps == 0  # the teacher alone: no leave-one-out objective to fit
        else:
            assert 1 <= points <= 1 + CANDIDATES
            assert fit_steps == 0 if points == 1 else 1 <= fit_steps <= 5  # kernel.max_steps
    for row in random_rows:
        assert row["acquisition"] == row["kernel_points"] == row["kernel_fit_steps"] == ""
    assert random_record["strategy"] == "random" and _header(random_dir) == list(SEARCH_COLUMNS)
    assert [r["params"] for r in random_rows] != [r["params"] for r in esnac_rows]


def test_the_same_search_twice_gives_the_same_results(runs):
    (first, record), (second, again) = runs["esnac"], runs["esnac_again"]
    assert _without_train_seconds(first) == _without_train_seconds(second)
    assert [e["file"] for e in record["top"]] == [e["file"] for e in again["top"]]
    _assert_same_top(first, second, record)


def _assert_same_top(first: Path, second: Path, record: dict) -> None:
    for entry in record["top"]:
        a, b = load_torch(first / entry["file"]), load_torch(second / entry["file"])
        assert a["kwargs"] == b["kwargs"]
        assert all(torch.equal(value, b["state_dict"][key]) for key, value in a["state_dict"].items())


# --- resuming and refusals --------------------------------------------------------------------------------------

RESUME = {"epochs": 4}  # slow enough that the state file can be caught between candidates

SEARCH_SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from compresslib.esnac.search import search
from compresslib.specs.esnac import KernelSpec, SearchSpec
values = json.loads(sys.argv[1])
search(SearchSpec(**{**values, "kernel": KernelSpec(**values["kernel"])}), *sys.argv[2:5])
"""


def _evaluated(state_file: Path) -> list[dict] | None:
    try:
        return load_torch(state_file)["evaluated"]
    except Exception:  # not written yet (it is replaced atomically, so never half-written)
        return None


def test_a_killed_search_resumes_without_redoing_candidates_and_ends_as_an_uninterrupted_one(env):
    reference_dir, reference = _run(env, "resume-reference", **RESUME)
    run_dir = env["root"] / "resumed"
    spec = _spec(**RESUME)
    process = subprocess.Popen(
        [sys.executable, "-c", SEARCH_SCRIPT, json.dumps(spec.to_dict()), str(env["data"]), str(env["teacher"]),
         str(run_dir)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    state_file, seen = run_dir / SEARCH_STATE, None
    deadline = time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None:
            evaluated = _evaluated(state_file) if state_file.exists() else None
            if evaluated:
                seen = evaluated
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
    assert seen is not None, f"the search never saved an evaluated candidate: {stderr.decode()[-2000:]}"
    assert 1 <= len(seen) < STEPS * CANDIDATES
    assert state_file.exists() and not (run_dir / "record.json").exists()  # killed mid-search
    before_kill = len(_evaluated(state_file))
    assert len(seen) <= before_kill < STEPS * CANDIDATES

    record = search(_spec(**RESUME), env["data"], env["teacher"], run_dir)
    rows = _rows(run_dir)
    # (a) the candidates evaluated before the kill were kept, not trained again
    for old in seen:
        assert float(rows[old["index"]]["train_seconds"]) == old["train_seconds"]
    sessions = record["timing"]["sessions"]
    assert len(sessions) == 2 and sessions[0]["evaluated_before"] == 0
    assert sessions[1]["evaluated_before"] == before_kill >= 1
    assert [s["evaluated_before"] for s in reference["timing"]["sessions"]] == [0]
    # (b) the outputs equal an uninterrupted run's
    assert _without_train_seconds(run_dir) == _without_train_seconds(reference_dir)
    assert [e["file"] for e in record["top"]] == [e["file"] for e in reference["top"]]
    assert record["top"] == reference["top"] and record["curve"] == reference["curve"]
    _assert_same_top(run_dir, reference_dir, record)
    assert not state_file.exists()


class _Interrupted(Exception):
    pass


def _interrupt_after_first_candidate(monkeypatch) -> None:
    evaluate = search_module._Search._evaluate
    calls = []

    def once(self, *args, **kwargs):
        if calls:
            raise _Interrupted
        calls.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(search_module._Search, "_evaluate", once)


def _stopped_after_one_candidate(env, run_dir, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        _interrupt_after_first_candidate(patch)
        with pytest.raises(_Interrupted):
            search(_spec(), env["data"], env["teacher"], run_dir)


def test_a_state_written_with_other_settings_is_refused(env, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _stopped_after_one_candidate(env, run_dir, monkeypatch)
    assert len(load_torch(run_dir / SEARCH_STATE)["evaluated"]) == 1
    with pytest.raises(CheckpointMismatch, match="lr") as error:
        search(_spec(lr=2e-3), env["data"], env["teacher"], run_dir)
    assert "0.002" in str(error.value) and "0.001" in str(error.value)
    with pytest.raises(CheckpointMismatch, match="holdout_size"):
        search(_spec(holdout_size=64), env["data"], env["teacher"], run_dir)
    # runtime settings are not part of the identity: the state resumes under another thread count
    record = search(dataclasses.replace(_spec(), threads=1), env["data"], env["teacher"], run_dir)
    assert record["candidates"] == STEPS * CANDIDATES
    assert record["timing"]["sessions"][1]["evaluated_before"] == 1


def test_a_refused_state_names_the_setting_that_differs(env, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _stopped_after_one_candidate(env, run_dir, monkeypatch)
    with pytest.raises(CheckpointMismatch) as error:
        search(_spec(lr=2e-3), env["data"], env["teacher"], run_dir)
    message = str(error.value)
    assert "lr: 0.001 in the checkpoint, 0.002 requested" in message
    assert "acquisition_samples" not in message  # settings that agree are not listed


def test_a_teacher_of_another_dataset_is_refused(env, tmp_path):
    teacher, meta = load_model(env["teacher"])
    other = tmp_path / "cifar10-teacher.pt"
    save_model(other, teacher, meta["name"], meta["kwargs"], extra={"dataset": "cifar10",
                                                                     "normalization": NORMALIZATION})
    with pytest.raises(ValueError, match="trained on 'cifar10', the search is on 'synthetic'"):
        search(_spec(), env["data"], other, tmp_path / "run")
    unlabelled = tmp_path / "unlabelled-teacher.pt"
    save_model(unlabelled, teacher, meta["name"], meta["kwargs"])
    with pytest.raises(ValueError, match="trained on None"):
        search(_spec(), env["data"], unlabelled, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_damaged_candidate_is_refused_as_the_search_resumes(env, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _stopped_after_one_candidate(env, run_dir, monkeypatch)
    (weights,) = (run_dir / "candidates").iterdir()
    weights.write_bytes(weights.read_bytes()[:200])  # truncated
    with pytest.raises(DamagedFile, match=f"^{re.escape(str(weights))} is not a readable ESNAC candidate's weights"):
        search(_spec(), env["data"], env["teacher"], run_dir)
