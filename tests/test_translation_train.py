"""Translation training: token batching, masked losses, Noam/OpenNMT schedules, teacher, word/sequence KD, QD,
SIGKILL-and-resume, divergence."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from compresslib.data.corpus import load_corpus, prepare_corpus, split_sentences, tokenizers
from compresslib.data.synthetic_translation import make_synthetic_translation
from compresslib.io import atomic_path, load_torch, save_torch, sha256_file
from compresslib.losses import nmt_loss
from compresslib.models import load_model
from compresslib.models.lstm_nmt import LstmNMT
from compresslib.models.transformer_nmt import TransformerNMT
from compresslib.runs.checkpoint import CheckpointMismatch, save_checkpoint
from compresslib.runs.lifecycle import TrainingDiverged
from compresslib.schedules import NoamSchedule, OnmtDecay
from compresslib.settings import SpecError
from compresslib.translation import train as train_module
from compresslib.translation.batching import collate, sentence_widths, token_batches
from compresslib.translation.evaluate import bleu
from compresslib.specs.translation import TranslationSpec, build_translation_spec
from compresslib.translation.targets import load_targets
from compresslib.translation.train import nmt_quantized_names, train_translation

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
PAD, BOS, EOS = 0, 2, 3
TEST_SENTENCES = 40
# A 2 x 32 Transformer, 10 epochs of ~55 batches: test BLEU 18.5 on one CPU thread (seed 1), in about 5 s.
TEACHER = {
    "corpus": "synthetic_translation", "model": "transformer_nmt",
    "model_kwargs": {"layers": 2, "d_model": 32, "heads": 2, "ffn": 64, "dropout": 0.0},
    "epochs": 10, "batch_tokens": 200, "eval_batch_tokens": 400, "warmup": 200, "lr": 2.0, "max_decode_ratio": 2.0,
    "device": "cpu", "threads": 1,
}
LSTM_STUDENT = TEACHER | {"kind": "undistilled", "model": "lstm_nmt",
                          "model_kwargs": {"layers": 1, "hidden": 32, "embedding": 16, "dropout": 0.0},
                          "epochs": 2, "warmup": 100, "lr": 1.0, "labels": {"student": "lstm32"}}
SMALL_TRANSFORMER = TEACHER | {"model_kwargs": {"layers": 1, "d_model": 16, "heads": 2, "ffn": 32, "dropout": 0.1},
                               "epochs": 2}


def spec_of(values: dict, *overrides: str) -> TranslationSpec:
    return build_translation_spec(values, overrides)


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.pt"
    pairs = make_synthetic_translation(1000, TEST_SENTENCES, seed=1, vocabulary=30, min_length=3, max_length=6)
    prepare_corpus("synthetic_translation", pairs, path, vocab_size=100, max_length=30,
                   provenance={"source": "make_synthetic_translation(1000, 40, seed=1, vocabulary=30)"})
    return path


@pytest.fixture(scope="module")
def teacher_run(corpus_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("teacher")
    return run_dir, train_translation(spec_of(TEACHER), corpus_path, run_dir)


# ---- batching -----------------------------------------------------------------------------------------------------

def test_token_batches_respect_the_budget_cover_every_sentence_and_depend_on_seed_and_epoch():
    generator = torch.Generator().manual_seed(0)
    widths = torch.randint(1, 40, (500,), generator=generator)
    widths[17] = 300  # wider than the budget: a batch of its own
    for shuffle in (True, False):
        batches = token_batches(widths, 120, shuffle=shuffle, seed=3, epoch=1)
        assert sorted(torch.cat(batches).tolist()) == list(range(500))  # every sentence exactly once
        for batch in batches:
            assert len(batch) * int(widths[batch].max()) <= 120 or len(batch) == 1
        assert [17] in [b.tolist() for b in batches]
    first = token_batches(widths, 120, shuffle=True, seed=3, epoch=1)

    def listed(seed: int, epoch: int) -> list[list[int]]:
        return [b.tolist() for b in token_batches(widths, 120, shuffle=True, seed=seed, epoch=epoch)]

    assert [b.tolist() for b in first] == listed(3, 1)  # deterministic
    assert listed(3, 1) != listed(3, 2) and listed(3, 1) != listed(4, 1)  # a function of (seed, epoch)
    ordered = torch.cat(token_batches(widths, 120, shuffle=False))
    assert widths[ordered].diff().min() >= 0  # evaluation order: sorted by width
    # training batches group similar lengths: far less padding than random batches of the same sizes
    padded = sum(len(b) * int(widths[b].max()) for b in first if len(b) > 1)
    assert padded < 1.3 * sum(int(widths[b].sum()) for b in first if len(b) > 1)


def test_collate_right_pads_with_bos_and_eos():
    src = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    tgt = [torch.tensor([9]), torch.tensor([10, 11, 12])]
    s, tgt_in, tgt_out = collate(src, tgt, PAD, BOS, EOS)
    assert s.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert tgt_in.tolist() == [[2, 9, 0, 0], [2, 10, 11, 12]]
    assert tgt_out.tolist() == [[9, 3, 0, 0], [10, 11, 12, 3]]
    assert sentence_widths(src, tgt).tolist() == [3, 4]  # max(source, target + 1)


# ---- losses and schedules -----------------------------------------------------------------------------------------

def _models(dropout: float = 0.0):
    torch.manual_seed(0)
    student = TransformerNMT(20, 17, layers=1, d_model=16, heads=2, ffn=24, dropout=dropout)
    teacher = LstmNMT(20, 17, layers=1, hidden=12, embedding=10, dropout=dropout)
    return student.eval(), teacher.eval()


@pytest.mark.parametrize("with_teacher", [False, True], ids=["nll", "word-kd"])
def test_the_loss_ignores_padding(with_teacher: bool):
    student, teacher = _models()
    generator = torch.Generator().manual_seed(1)
    src = [torch.randint(4, 20, (n,), generator=generator) for n in (5, 2, 4)]
    tgt = [torch.randint(4, 17, (n,), generator=generator) for n in (3, 6, 1)]
    s, tgt_in, tgt_out = collate(src, tgt, PAD, BOS, EOS)

    def loss(s, tgt_in, tgt_out):
        with torch.no_grad():
            teacher_logits = teacher(s, tgt_in) if with_teacher else None
            return nmt_loss(student(s, tgt_in), tgt_out, teacher_logits, pad_id=PAD, temperature=1.0, weight=0.7)

    padded = [F.pad(t, (0, 3), value=PAD) for t in (s, tgt_in, tgt_out)]  # three more padding columns
    assert torch.allclose(loss(s, tgt_in, tgt_out), loss(*padded), atol=1e-6, rtol=1e-6)


def test_kd_loss_matches_a_hand_computation_and_weight_zero_is_nll():
    student = torch.tensor([[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [9.0, 9.0, 9.0]]])  # (1, 3, V=3); the last is padding
    teacher = torch.tensor([[[2.0, 0.0, 1.0], [1.0, 1.0, 1.0], [-9.0, 0.0, 9.0]]])
    targets = torch.tensor([[1, 2, PAD]])
    for temperature in (1.0, 2.0):
        nll = kl = 0.0
        for t in range(2):  # the two real tokens
            p_s = [math.exp(v / temperature) for v in student[0, t].tolist()]
            p_t = [math.exp(v / temperature) for v in teacher[0, t].tolist()]
            p_s, p_t = [v / sum(p_s) for v in p_s], [v / sum(p_t) for v in p_t]
            z = [math.exp(v) for v in student[0, t].tolist()]
            nll -= math.log(z[targets[0, t]] / sum(z))
            kl += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
        expected = (0.3 * nll + 0.7 * temperature ** 2 * kl) / 2
        got = nmt_loss(student, targets, teacher, pad_id=PAD, temperature=temperature, weight=0.7)
        assert got.item() == pytest.approx(expected, rel=1e-6)
    plain = nmt_loss(student, targets, pad_id=PAD)
    assert plain.item() == pytest.approx(nll / 2, rel=1e-6)
    assert nmt_loss(student, targets, teacher, pad_id=PAD, weight=0.0).item() == pytest.approx(plain.item(), rel=1e-7)


def test_noam_schedule_follows_the_formula():
    schedule = NoamSchedule(1.0, 512, 8000)
    assert schedule.lr_at(1) == pytest.approx(512 ** -0.5 * 8000 ** -1.5)
    assert schedule.lr_at(8000) == pytest.approx(512 ** -0.5 * 8000 ** -0.5)  # the peak
    assert schedule.lr_at(32000) == pytest.approx(512 ** -0.5 * 32000 ** -0.5)
    assert schedule.lr_at(32000) == pytest.approx(schedule.lr_at(8000) / 2)
    assert [schedule.next_lr(), schedule.next_lr()] == [schedule.lr_at(1), schedule.lr_at(2)]
    assert schedule.state_dict() == {"step": 2}
    assert NoamSchedule(2.0, 32, 100).lr_at(100) == pytest.approx(2.0 * 32 ** -0.5 * 100 ** -0.5)


def test_sgd_halves_from_start_decay_epoch_or_after_a_perplexity_rise():
    schedule = OnmtDecay(1.0, 0.5, start_decay_epoch=8)
    rates = []
    for epoch, ppl in enumerate([50, 40, 30, 25, 20, 18, 16, 15, 14, 13], start=1):
        rates.append(schedule.next_lr())
        schedule.end_epoch(epoch, ppl)
    assert rates == [1.0] * 8 + [0.5, 0.25]  # decays after epoch 8 was validated, then every epoch
    schedule = OnmtDecay(1.0, 0.5, start_decay_epoch=8)
    rates = []
    for epoch, ppl in enumerate([50, 40, 45, 30, 20], start=1):
        rates.append(schedule.next_lr())
        schedule.end_epoch(epoch, ppl)
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.25]  # ppl rose in epoch 3: decaying starts and stays on (OpenNMT-py)


# ---- training runs ------------------------------------------------------------------------------------------------

def test_a_tiny_transformer_learns_the_synthetic_task(teacher_run: tuple[Path, dict], corpus_path: Path):
    run_dir, record = teacher_run
    metrics = record["metrics"]
    assert record["kind"] == "translation" and record["run_kind"] == "teacher"
    assert metrics["final_bleu"] > 5.0, metrics  # 18.5 measured (seed 1, one thread)
    assert metrics["bleu_signature"].startswith("nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:")
    assert metrics["validation_split"] == "test" and metrics["final_test_ppl"] == metrics["final_val_ppl"]
    assert 1.0 < metrics["final_test_ppl"] < record["curve"]["val_ppl"][0]
    assert record["timing"]["inference_s"] > 0 and record["timing"]["sentences_per_s"] > 0
    assert record["memory"]["param_bytes"] == 4 * record["model"]["params"]
    assert record["memory"]["process_peak_rss_bytes"] > 0 and record["memory"]["inference_peak_bytes"] is None
    assert record["provenance"]["dataset"]["sha256"] == sha256_file(corpus_path)
    assert record["optimizer"] == {"name": "noam", "max_grad_norm": 0.0, "steps": sum(pd.read_csv(
        run_dir / "history.csv").steps)}
    lines = (run_dir / "translations/test.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == TEST_SENTENCES
    corpus = load_corpus(corpus_path)
    assert bleu(lines, corpus["splits"]["test"]["tgt_text"], lowercase=True)[0] == pytest.approx(metrics["final_bleu"])
    assert list(pd.read_csv(run_dir / "history.csv").epoch) == list(range(1, 11))
    model, meta = load_model(run_dir / "model.pt")
    assert meta["corpus_sha256"] == sha256_file(corpus_path)
    assert meta["kwargs"]["src_vocab"] == corpus["vocab_sizes"]["src"]
    assert not (run_dir / "checkpoint.pt").exists()


def test_an_lstm_student_distils_word_level_from_the_transformer(teacher_run: tuple[Path, dict], corpus_path: Path,
                                                                 tmp_path: Path):
    teacher = teacher_run[0] / "model.pt"
    spec = spec_of(LSTM_STUDENT, 'kind="distill"', "kd.weight=0.7")
    record = train_translation(spec, corpus_path, tmp_path, teacher_path=teacher)
    assert record["run_kind"] == "distill" and record["spec"]["kd"] == {"temperature": 1.0, "weight": 0.7}
    assert record["provenance"]["teacher_model"]["sha256"] == sha256_file(teacher)
    assert record["metrics"]["epochs_run"] == 2 and math.isfinite(record["metrics"]["final_test_ppl"])
    assert len((tmp_path / "translations/test.txt").read_text().splitlines()) == TEST_SENTENCES
    with pytest.raises(ValueError, match="needs both a teacher model and kd settings"):
        train_translation(spec_of(LSTM_STUDENT), corpus_path, tmp_path / "x", teacher_path=teacher)


def test_sequence_level_kd_trains_on_the_teachers_translations(teacher_run: tuple[Path, dict], corpus_path: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sys.path.insert(0, str(REPO / "workflow_scripts"))
    try:
        import translate as translate_script
    finally:
        sys.path.remove(str(REPO / "workflow_scripts"))
    teacher = teacher_run[0] / "model.pt"
    ids_path, text_path = tmp_path / "targets.pt", tmp_path / "train.txt"
    translate_script.main(["--model", str(teacher), "--corpus", str(corpus_path), "--split", "train", "--ids",
                           str(ids_path), "--text", str(text_path), "--max-length", "12", "--threads", "1"])
    corpus = load_corpus(corpus_path)
    train_src = split_sentences(corpus, "train", "src")
    payload = load_torch(ids_path)
    assert payload["corpus_sha256"] == sha256_file(corpus_path) and payload["model_sha256"] == sha256_file(teacher)
    targets, meta = load_targets(ids_path, sha256_file(corpus_path), len(train_src), corpus["vocab_sizes"]["tgt"])
    assert meta["split"] == "train" and meta["beam_size"] == 5 and meta["max_length"] == 12
    assert tokenizers(corpus)[1].decode(targets) == text_path.read_text(encoding="utf-8").splitlines()
    references = [t.tolist() for t in split_sentences(corpus, "train", "tgt")]
    assert [t.tolist() for t in targets] != references  # an imperfect teacher: its translations are new targets

    seen = {}
    original_collate = train_module.collate

    def spy(src_list, tgt_list, *args):  # record the (source, target) pairs the training loop uses
        if tgt_list is not None:
            for s, t in zip(src_list, tgt_list):
                seen.setdefault(tuple(s.tolist()), set()).add(tuple(t.tolist()))
        return original_collate(src_list, tgt_list, *args)

    monkeypatch.setattr(train_module, "collate", spy)
    record = train_translation(spec_of(LSTM_STUDENT, 'kind="seq_distill"', "epochs=1"), corpus_path,
                               tmp_path / "run", targets_path=ids_path)
    assert record["run_kind"] == "seq_distill"
    assert record["provenance"]["targets"]["model_sha256"] == sha256_file(teacher)
    expected: dict = {}
    for s, t in zip(train_src, targets):
        expected.setdefault(tuple(s.tolist()), set()).add(tuple(t.tolist()))
    assert seen == expected  # every training target is the teacher's translation of its source

    other = tmp_path / "other.pt"
    save_torch(other, {**payload, "corpus_sha256": "0" * 64}, checksum=True)  # a whole file, of another corpus
    with pytest.raises(ValueError, match="different corpus file"):
        train_translation(spec_of(LSTM_STUDENT, 'kind="seq_distill"'), corpus_path, tmp_path / "bad",
                          targets_path=other)


@pytest.mark.parametrize("bits, skip_by", [(2, "layers"), (4, "registration")])
def test_a_quantized_student_trains_at_its_quantized_point(teacher_run: tuple[Path, dict], corpus_path: Path,
                                                           tmp_path: Path, bits: int, skip_by: str):
    spec = spec_of(SMALL_TRANSFORMER | {"kind": "quantize", "kd": {}}, f"quant.bits={bits}", "quant.bucket_size=64",
                   f'quant.skip_by="{skip_by}"')
    record = train_translation(spec, corpus_path, tmp_path, teacher_path=teacher_run[0] / "model.pt")
    assert record["run_kind"] == "quantize" and "shadow_val_ppl" in pd.read_csv(tmp_path / "history.csv")
    quantization = record["quantization"]
    model, _ = load_model(tmp_path / "model.pt")
    names = [name for name, _ in model.named_parameters()]
    if skip_by == "registration":  # QD's rule: parameter tensors 0 and -1 stay in full precision
        assert quantization["full_precision_tensors"] == [names[0], names[-1]]
        assert names[0] == "src_embedding.weight" and names[-1] == "generator.bias"
    else:
        assert all(n.split(".")[0] in ("src_embedding", "tgt_embedding", "generator")
                   for n in quantization["full_precision_tensors"])
    assert quantization["quantized_tensors"] == nmt_quantized_names(model, False, skip_by)
    parameters = dict(model.named_parameters())
    for name in quantization["quantized_tensors"]:
        flat = parameters[name].detach().flatten()
        for start in range(0, flat.numel(), 64):
            assert flat[start:start + 64].unique().numel() <= 2 ** bits, name
    assert quantization["packed_bytes"] < record["model"]["bytes_fp32"]
    assert (tmp_path / "model.packed").exists() and record["metrics"]["final_bleu"] is not None


# ---- resume, refusals, divergence ----------------------------------------------------------------------------------

RESUME = SMALL_TRANSFORMER | {"epochs": 4}


def _command(corpus_path: Path, run_dir: Path) -> list[str]:
    settings = [f"{key}={json.dumps(value)}" for key, value in RESUME.items() if key != "threads"]
    return [sys.executable, str(REPO / "workflow_scripts/train_translation.py"), "--corpus", str(corpus_path),
            "--run-dir", str(run_dir), "--threads", "1", *settings]


def test_a_killed_run_resumes_to_identical_results_and_other_settings_are_refused(corpus_path: Path, tmp_path: Path):
    reference = train_translation(spec_of(RESUME), corpus_path, tmp_path / "reference")
    run_dir = tmp_path / "resumed"
    checkpoint = run_dir / "checkpoint.pt"
    process = subprocess.Popen(_command(corpus_path, run_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None and not checkpoint.exists():
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
    assert checkpoint.exists(), stderr.decode()[-2000:]
    assert not (run_dir / "record.json").exists()  # killed mid-run: nothing looks finished
    killed_at = load_torch(checkpoint)["next_epoch"]
    assert 1 <= killed_at < 4

    subprocess.run(_command(corpus_path, run_dir), cwd=REPO, check=True, capture_output=True)
    resumed = json.loads((run_dir / "record.json").read_text())
    assert resumed["timing"]["resumed_from_epoch"] == killed_at
    assert [s["start_epoch"] for s in resumed["timing"]["sessions"]] == [0, killed_at]
    assert resumed["curve"] == reference["curve"]
    assert resumed["metrics"] == reference["metrics"]
    weights = load_torch(run_dir / "model.pt")["state_dict"]
    for key, value in load_torch(tmp_path / "reference/model.pt")["state_dict"].items():
        assert torch.equal(value, weights[key]), key
    assert (run_dir / "translations/test.txt").read_text() == (tmp_path / "reference/translations/test.txt").read_text()
    assert not checkpoint.exists()

    # an unfinished run written with another warmup is refused, naming the setting; nothing is touched
    refused = tmp_path / "refused"
    refused.mkdir()
    identity = {**spec_of(RESUME, "warmup=50").identity(), "corpus_sha256": sha256_file(corpus_path),
                "teacher_sha256": None, "targets_sha256": None}
    save_checkpoint(refused / "checkpoint.pt", {"identity": identity, "sessions": [], "next_epoch": 1})
    written = (refused / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointMismatch, match=r"warmup: 50 in the checkpoint, 200 requested"):
        train_translation(spec_of(RESUME), corpus_path, refused)
    assert sorted(p.name for p in refused.iterdir()) == ["checkpoint.pt"]
    assert (refused / "checkpoint.pt").read_bytes() == written


def test_divergence_stops_the_run_before_any_output(corpus_path: Path, tmp_path: Path):
    spec = spec_of(SMALL_TRANSFORMER, 'optimizer="sgd"', "lr=1e6", "max_grad_norm=0")
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1 .*no model was written"):
        train_translation(spec, corpus_path, tmp_path)
    assert not any((tmp_path / name).exists() for name in ("model.pt", "record.json", "history.csv", "translations"))


def test_spec_refusals():
    with pytest.raises(SpecError, match="quant.method"):
        spec_of(TEACHER, 'kind="quantize"', 'quant.method="dq"')
    with pytest.raises(SpecError, match="model_kwargs.src_vocab"):
        spec_of(TEACHER | {"model_kwargs": {"src_vocab": 5}})
    with pytest.raises(SpecError, match="optimizer"):
        spec_of(TEACHER, 'optimizer="adagrad"')
    assert spec_of({}).batch_tokens == 3192 and spec_of({}).eval_batch_tokens == 1024 and spec_of({}).beam_size == 5


@pytest.mark.parametrize(("values", "message"), [
    ({"kind": "distill"}, "kind: a distill run needs kd settings"),
    ({"kind": "quantize", "kd": {}}, "kind: a quantize run needs quant settings"),
    ({"kind": "teacher", "kd": {}}, "kind: a teacher run takes no kd settings (kd is set)"),
    ({"kind": "undistilled", "kd": {}}, "kind: a undistilled run takes no kd settings (kd is set)"),
    ({"kind": "seq_distill", "quant": {"method": "qd"}},
     "kind: a seq_distill run takes no quant settings (quant is set)"),
    ({"kind": "esnac"}, "kind: got 'esnac', expected one of teacher, undistilled, distill, seq_distill, quantize"),
], ids=["distill-without-kd", "quantize-without-quant", "teacher-with-kd", "undistilled-with-kd",
        "seq-distill-with-quant", "unknown-kind"])
def test_spec_refuses_a_kind_that_does_not_fit_its_settings(values: dict, message: str):
    with pytest.raises(SpecError) as error:
        spec_of(TEACHER | values)
    assert str(error.value) == message


def test_spec_builds_each_kind_with_the_settings_it_takes():
    """The counterpart of the refusals above: seq_distill's kd and quantize's kd are optional."""
    for kind, groups in [("teacher", {}), ("undistilled", {}), ("distill", {"kd": {}}), ("seq_distill", {}),
                         ("seq_distill", {"kd": {}}), ("quantize", {"quant": {"method": "qd"}}),
                         ("quantize", {"quant": {"method": "qd"}, "kd": {}})]:
        spec = spec_of(TEACHER | {"kind": kind, **groups})
        assert spec.kind == kind and {key for key in ("kd", "quant") if getattr(spec, key) is not None} == set(groups)


class _JobStarted(Exception):
    """Raised in place of the training job: the run got past its input checks."""


@pytest.mark.parametrize(("overrides", "with_targets", "refused"), [
    (('kind="seq_distill"',), False, True), (('kind="undistilled"',), True, True),
    (('kind="seq_distill"',), True, False), (('kind="quantize"', 'quant.method="qd"'), True, False),
], ids=["seq-distill-without-targets", "undistilled-with-targets", "seq-distill-with-targets",
        "quantize-with-targets"])
def test_a_targets_file_is_read_by_sequence_level_kd_and_quantization_only(
        corpus_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: tuple[str, ...],
        with_targets: bool, refused: bool):
    def job(*args: object, **kwargs: object) -> None:
        raise _JobStarted

    monkeypatch.setattr(train_module, "_Job", job)  # no training work: only what comes before it runs
    spec = spec_of(LSTM_STUDENT, *overrides)
    targets = None
    if with_targets:  # never read: the check comes first (its checksum is, with the corpus's, before any work)
        targets = tmp_path / "targets.pt"
        with atomic_path(targets, checksum=True) as tmp:
            tmp.write_bytes(b"never read")
    run_dir = tmp_path / "run"
    if not refused:
        with pytest.raises(_JobStarted):
            train_translation(spec, corpus_path, run_dir, targets_path=targets)
        return
    with pytest.raises(ValueError) as error:
        train_translation(spec, corpus_path, run_dir, targets_path=targets)
    assert str(error.value) == (
        "sequence-level KD (kind seq_distill) trains on a targets file, and only it and quantized distillation "
        f"(kind quantize) read one (kind: {spec.kind}, targets file: {targets})")
    assert not run_dir.exists()  # refused before writing anything
