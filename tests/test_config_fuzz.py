"""Bad configs, each one mutation of the demo config or config.yaml, refused before any job with one line that names
the key and the value: schema violations, unknown names, bad references between entries, out-of-range numbers,
settings that contradict each other, keys given twice and YAML syntax errors (those two read from a file)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from compresslib.config import ConfigError, load_schema, read_config_file, schema_errors, with_defaults
from compresslib.experiments import check_config, load_config
from conftest import REPO, run_snakemake

SCHEMA_PATH = REPO / "rules/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
DEMO_PATH, PAPER_PATH = REPO / "profiles/demo/config.yaml", REPO / "config.yaml"
DEMO_TEXT, PAPER_TEXT = DEMO_PATH.read_text(), PAPER_PATH.read_text()
# JSON-copied: config.yaml's anchors load as one shared object, and a mutation must change one entry only
BASES = {"demo": json.dumps(yaml.safe_load(DEMO_TEXT)), "paper": json.dumps(yaml.safe_load(PAPER_TEXT))}
TOO_LARGE_SEED = 2**70  # the seed: torch.manual_seed takes at most 2**64 - 1
BEYOND_TORCH = "is out of range; allowed: <= 18446744073709551615"
Mutation = Callable[[dict], Any]


def _problems(config: dict) -> list[str]:
    """What the workflow refuses ``config`` with, one problem a line: its schema violations, or else the problems
    check_config finds in it with its defaults."""
    problems = schema_errors(config, SCHEMA)
    if problems:
        return problems
    try:
        check_config(with_defaults(config, SCHEMA))
    except ConfigError as error:
        return [line.removeprefix("  - ") for line in str(error).splitlines()[1:]]
    return []


def _set(path: str, value: Any) -> Mutation:
    """Set the key at dotted ``path`` (its mappings created where missing) to ``value``."""
    *parents, leaf = path.split(".")

    def mutate(config: dict) -> None:
        target = config
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value

    return mutate


def _delete(path: str) -> Mutation:
    *parents, leaf = path.split(".")

    def mutate(config: dict) -> None:
        target = config
        for key in parents:
            target = target[key]
        del target[leaf]

    return mutate


def _case(name: str, mutation: Mutation, *expected: str, base: str = "demo") -> Any:
    return pytest.param(base, mutation, expected, id=name)


CASES = [
    # ---- top level, data, validation -----------------------------------------------------------------------------
    _case("unknown-top-level-key", _set("bogus", 1),
          "(top level): unknown key 'bogus'; allowed keys: data, distill, esnac, lit, quantize, students, "
          "teacher_outputs, teachers, translation, validation", base="paper"),
    _case("no-teachers", _delete("teachers"), "(top level): 'teachers' is a required property"),
    _case("empty-teachers", _set("teachers", {}), "teachers: {} should be non-empty"),
    _case("teacher-outputs", _set("teacher_outputs", "sometimes"),
          "teacher_outputs: 'sometimes' is not allowed; allowed: auto, online, cached"),
    _case("mirror-type", _set("data.mirror", 5), "data.mirror: 5 is not a string or null"),
    _case("verify-checksums-type", _set("data.verify_checksums", "yes"),
          "data.verify_checksums: 'yes' is not a boolean"),
    _case("extracted-generated-dataset", _set("data.extracted", {"synthetic": "/data"}),
          "data.extracted.synthetic: not a downloadable dataset; allowed: cifar10, cifar100, amazon_review_full"),
    _case("synthetic-train-size", _set("data.synthetic.train_size", 0),
          "data.synthetic.train_size: 0 is out of range; allowed: >= 1"),
    _case("synthetic-seed", _set("data.synthetic.seed", TOO_LARGE_SEED),
          f"data.synthetic.seed: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("synthetic-text-length", _set("data.synthetic_text.length", 10),
          "data.synthetic_text.length: 10 is out of range; allowed: >= 50"),
    _case("synthetic-text-noise", _set("data.synthetic_text.noise", 1.0),
          "data.synthetic_text.noise: 1.0 is out of range; allowed: < 1"),
    _case("validation-policy", _set("validation.policy", "val"),
          "validation.policy: 'val' is not allowed; allowed: test, holdout"),
    _case("holdout-size-zero", _set("validation.holdout_size", 0),
          "validation.holdout_size: 0 is out of range; allowed: >= 1"),
    _case("holdout-seed", _set("validation.holdout_seed", 2**64), f"validation.holdout_seed: {2**64} {BEYOND_TORCH}"),
    _case("holdout-takes-the-synthetic-training-split", _set("validation", {"policy": "holdout", "holdout_size": 4000}),
          "validation.holdout_size: 4000 leaves nothing of the 4000 training examples of synthetic to train on; "
          "allowed: 1 to 3999"),
    _case("teacher-holdout-beyond-the-synthetic-training-split",
          _set("teachers.demo-esnac-teacher.validation.holdout_size", 4500),
          "teachers.demo-esnac-teacher.validation.holdout_size: 4500 leaves nothing of the 4000 training examples of "
          "synthetic to train on; allowed: 1 to 3999"),
    _case("teacher-holdout-takes-cifar10", _set("teachers.esnac-vgg19-c10.validation.holdout_size", 50_000),
          "teachers.esnac-vgg19-c10.validation.holdout_size: 50000 leaves nothing of the 50000 training examples of "
          "cifar10 to train on; allowed: 1 to 49999", base="paper"),
    # ---- seeds (torch.manual_seed takes 0 to 2**64 - 1) ------------------------------------------------------------
    _case("teacher-seed", _set("teachers.demo-teacher.seed", TOO_LARGE_SEED),
          f"teachers.demo-teacher.seed: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("distill-seed", _set("distill.demo.seeds", [1, TOO_LARGE_SEED]),
          f"distill.demo.seeds[1]: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("distill-seed-just-beyond", _set("distill.demo.seeds", [2**64]), f"distill.demo.seeds[0]: {2**64}"),
    _case("paper-distill-seed", _set("distill.lma-cifar10.seeds", [TOO_LARGE_SEED]),
          f"distill.lma-cifar10.seeds[0]: {TOO_LARGE_SEED} {BEYOND_TORCH}", base="paper"),
    _case("quantize-seed", _set("quantize.demo-quant.seeds", [TOO_LARGE_SEED]),
          f"quantize.demo-quant.seeds[0]: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("lit-seed-negative", _set("lit.demo-lit.seeds", [-1]),
          "lit.demo-lit.seeds[0]: -1 is out of range; allowed: >= 0"),
    _case("esnac-seed", _set("esnac.demo-esnac.seeds", [TOO_LARGE_SEED]),
          f"esnac.demo-esnac.seeds[0]: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("translation-teacher-seed", _set("translation.teachers.demo-nmt-lstm.seed", TOO_LARGE_SEED),
          f"translation.teachers.demo-nmt-lstm.seed: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("translation-experiment-seed", _set("translation.experiments.demo-qd-nmt.seeds", [TOO_LARGE_SEED]),
          f"translation.experiments.demo-qd-nmt.seeds[0]: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("synthetic-corpus-seed",
          _set("translation.corpora.synthetic_translation.synthetic.seed", TOO_LARGE_SEED),
          f"translation.corpora.synthetic_translation.synthetic.seed: {TOO_LARGE_SEED} {BEYOND_TORCH}"),
    _case("seed-type", _set("distill.demo.seeds", "one"), "distill.demo.seeds: 'one' is not a list"),
    # ---- teachers and students: models and their arguments ---------------------------------------------------------
    _case("teacher-model-unknown", _set("teachers.demo-teacher.model", "resnet9000"),
          "teachers.demo-teacher.model: 'resnet9000' is not a registered classifier model; allowed: "
          "demo_conv_student0"),
    _case("teacher-model-translation", _set("teachers.demo-teacher.model", "transformer_nmt"),
          "teachers.demo-teacher.model: 'transformer_nmt' is not a registered classifier model"),
    _case("teacher-model-kwargs-typo", _set("teachers.demo-teacher.model_kwargs", {"dropuot": [[1, 0.3]]}),
          "teachers.demo-teacher.model_kwargs: demo_conv_teacher takes no argument 'dropuot'; allowed: conv, pools, "
          "dropout, linear, in_chans, image_size"),
    _case("esnac-teacher-model-kwargs", _set("teachers.demo-esnac-teacher.model_kwargs", {"width": 8, "depth": 3}),
          "teachers.demo-esnac-teacher.model_kwargs: resnet10 takes no argument 'depth'; allowed: width"),
    _case("model-kwargs-num-classes", _set("teachers.demo-teacher.model_kwargs", {"num_classes": 7}),
          "teachers.demo-teacher.model_kwargs.num_classes: 7 is set by the run (the dataset's class count); "
          "allowed: leave it out"),
    _case("model-kwargs-activation", _set("students.demo-s0.model_kwargs", {"activation": "swish"}),
          "students.demo-s0.model_kwargs.activation: 'swish' is set by the run"),
    _case("student-model-kwargs-typo", _set("students.demo-s1.model_kwargs", {"width": 4}),
          "students.demo-s1.model_kwargs: demo_conv_student1 takes no argument 'width'"),
    _case("paper-teacher-model-kwargs", _set("teachers.resnet110.model_kwargs", {"init": "lit", "widen": 2}),
          "teachers.resnet110.model_kwargs: resnet110 takes no argument 'widen'; allowed: in_chans, init",
          base="paper"),
    _case("paper-student-model-kwargs", _set("students.wrn10-2.model_kwargs", {"drop_rate": 0.3}),
          "students.wrn10-2.model_kwargs: wide_resnet10_2 takes no argument 'drop_rate'; allowed: dropout, "
          "final_bn_momentum", base="paper"),
    _case("text-model-kwargs", _set("students.demo-text-student.model_kwargs", {"dropout": 0.1}),
          "students.demo-text-student.model_kwargs: demo_vdcnn_student takes no argument 'dropout'; allowed: blocks"),
    _case("model-kwargs-type", _set("teachers.demo-teacher.model_kwargs", "dropout"),
          "teachers.demo-teacher.model_kwargs: 'dropout' is not a mapping"),
    _case("student-model-missing", _delete("students.demo-s0.model"),
          "students.demo-s0: 'model' is a required property"),
    _case("student-model-unknown", _set("students.demo-s0.model", "resnet9000"),
          "students.demo-s0.model: 'resnet9000' is not a registered classifier model"),
    # ---- teachers and students: datasets, activations, recipes -----------------------------------------------------
    _case("teacher-dataset", _set("teachers.demo-teacher.dataset", "mnist"),
          "teachers.demo-teacher.dataset: 'mnist' is not allowed; allowed: cifar10, cifar100, synthetic"),
    _case("teacher-activation-pattern", _set("teachers.demo-teacher.activation", "gelu"),
          "teachers.demo-teacher.activation: 'gelu' is not allowed; allowed: relu, prelu, swish"),
    _case("teacher-activation-segments", _set("teachers.demo-teacher.activation", "lma40"),
          "teachers.demo-teacher.activation: activation 'lma40': lma needs a segment count K in 2..32, got 40"),
    _case("normalization-without-std", _set("teachers.demo-teacher.normalization", {"mean": [0.5] * 3}),
          "teachers.demo-teacher.normalization: 'std' is a required property"),
    _case("normalization-zero-std", _set("teachers.demo-teacher.normalization", {"mean": [0.5] * 3,
                                                                                 "std": [0.5, 0, 0.5]}),
          "teachers.demo-teacher.normalization.std[1]: 0 is out of range; allowed: > 0"),
    _case("text-normalization", _set("teachers.demo-text-teacher.normalization", {"mean": [0.5] * 3,
                                                                                  "std": [0.5] * 3}),
          "teachers.demo-text-teacher.normalization: synthetic_text is text"),
    _case("teacher-epochs", _set("teachers.demo-teacher.train.epochs", 0),
          "teachers.demo-teacher.train.epochs: 0 is out of range; allowed: >= 1"),
    _case("teacher-lr", _set("teachers.demo-teacher.train.lr", 0),
          "teachers.demo-teacher.train.lr: 0 is out of range; allowed: > 0"),
    _case("teacher-momentum", _set("teachers.demo-teacher.train.momentum", 1),
          "teachers.demo-teacher.train.momentum: 1 is out of range; allowed: < 1"),
    _case("teacher-schedule", _set("teachers.demo-teacher.train.schedule", "linear"),
          "teachers.demo-teacher.train.schedule: 'linear' is not allowed; allowed: generic, cifar100, multistep, "
          "constant, cosine"),
    _case("teacher-cosine-warmup-as-long-as-the-run", _set("teachers.demo-teacher.train", {
        "epochs": 8, "schedule": "cosine", "warmup_epochs": 8}),
          "teachers.demo-teacher: warmup_epochs: got 8, expected an integer from 0 to epochs - 1 = 7"),
    _case("teacher-warmup-without-cosine", _set("teachers.demo-teacher.train.warmup_epochs", 2),
          "teachers.demo-teacher: warmup_epochs: got 2, expected 0 unless schedule is cosine"),
    _case("teacher-cosine-floor", _set("teachers.demo-teacher.train.lr_floor_fraction", 1),
          "teachers.demo-teacher.train.lr_floor_fraction: 1 is out of range; allowed: < 1"),
    _case("teacher-milestone-beyond-epochs", _set("teachers.demo-teacher.train.milestones", [6, 9]),
          "teachers.demo-teacher.train.milestones[1]: 9 is beyond the 8 epochs; allowed: 0 to 8"),
    _case("paper-teacher-milestone-beyond-epochs", _set("teachers.resnet110.train.milestones", [100, 250]),
          "teachers.resnet110.train.milestones[1]: 250 is beyond the 200 epochs; allowed: 0 to 200", base="paper"),
    _case("teacher-milestone-negative", _set("teachers.demo-teacher.train.milestones", [-1]),
          "teachers.demo-teacher.train.milestones[0]: -1 is out of range; allowed: >= 0"),
    _case("teacher-selection", _set("teachers.demo-teacher.train.selection", "last"),
          "teachers.demo-teacher.train.selection: 'last' is not allowed; allowed: final, best"),
    _case("teacher-train-unknown-key", _set("teachers.demo-teacher.train.learning_rate", 0.1),
          "teachers.demo-teacher.train: unknown key 'learning_rate'; allowed keys: augment, batch_size"),
    _case("teacher-unknown-key", _set("teachers.demo-teacher.dropout", 0.3),
          "teachers.demo-teacher: unknown key 'dropout'; allowed keys: activation, dataset, model, model_kwargs"),
    _case("text-augmentation", _set("teachers.demo-text-teacher.train.augment", True),
          "teachers.demo-text-teacher: augment: got True, expected false for the text dataset synthetic_text"),
    _case("teacher-and-student-name", lambda c: c["students"].update({"demo-teacher": c["students"]["demo-s0"]}),
          "teachers.demo-teacher / students.demo-teacher: a name cannot be both a teacher and a student"),
    _case("name-breaking-paths", lambda c: c["students"].update({"s/0": c["students"]["demo-s0"]}),
          "'s/0' is not allowed; allowed: letters, digits, '_' and '-'"),
    _case("kd-temperature", _set("students.demo-s0.kd.temperature", 0),
          "students.demo-s0.kd.temperature: 0 is out of range; allowed: > 0"),
    _case("kd-weight", _set("students.demo-s0.kd.weight", 1.5),
          "students.demo-s0.kd.weight: 1.5 is out of range; allowed: <= 1"),
    _case("kd-reduction", _set("students.demo-s0.kd.kl_reduction", "sum"),
          "students.demo-s0.kd.kl_reduction: 'sum' is not allowed; allowed: batchmean, mean"),
    _case("student-milestone-beyond-epochs", _set("students.demo-s0.train.milestones", [3, 5]),
          "students.demo-s0.train.milestones[1]: 5 is beyond the 4 epochs; allowed: 0 to 4"),
    # ---- distill ----------------------------------------------------------------------------------------------------
    _case("distill-teacher", _set("distill.demo.teacher", "big-teacher"),
          "distill.demo.teacher: 'big-teacher' names no teacher; allowed: demo-teacher"),
    _case("distill-no-students", _set("distill.demo.students", []), "distill.demo.students: [] should be non-empty"),
    _case("distill-student-twice", _set("distill.demo.students", ["demo-s0", "demo-s0"]),
          "distill.demo.students: ['demo-s0', 'demo-s0'] has non-unique elements"),
    _case("distill-student-unknown", _set("distill.demo.students", ["demo-s0", "demo-s9"]),
          "distill.demo.students[1]: 'demo-s9' names no student; allowed: demo-s0, demo-s1"),
    _case("distill-activation", _set("distill.demo.activations", ["relu", "gelu"]),
          "distill.demo.activations[1]: 'gelu' is not allowed"),
    _case("distill-activation-segments", _set("distill.demo.activations", ["aplu2"]),
          "distill.demo.activations[0]: activation 'aplu2': aplu needs a segment count K in 3..32, got 2"),
    # ---- quantize ---------------------------------------------------------------------------------------------------
    _case("quantize-bits-low", _set("quantize.demo-quant.bits", [1]),
          "quantize.demo-quant.bits[0]: 1 is out of range; allowed: >= 2"),
    _case("quantize-bits-high", _set("quantize.demo-quant.bits", [9]),
          "quantize.demo-quant.bits[0]: 9 is out of range; allowed: <= 8"),
    _case("quantize-method", _set("quantize.demo-quant.methods", ["qd", "xq"]),
          "quantize.demo-quant.methods[1]: 'xq' is not allowed; allowed: qd, dq, pm"),
    _case("quantize-bucket", _set("quantize.demo-quant.buckets", [0]),
          "quantize.demo-quant.buckets[0]: 0 is out of range; allowed: >= 1"),
    _case("quantize-teacher", _set("quantize.demo-quant.teacher", "nobody"),
          "quantize.demo-quant.teacher: 'nobody' names no teacher"),
    _case("quantize-references", _set("quantize.demo-quant.references", ["teacher"]),
          "quantize.demo-quant.references[0]: 'teacher' is not allowed; allowed: distilled, undistilled"),
    _case("dq-milestone-beyond-epochs", _set("quantize.demo-quant.dq", {"epochs": 2, "schedule": "multistep",
                                                                        "milestones": [5]}),
          "quantize.demo-quant.dq.milestones[0]: 5 is beyond the 2 epochs; allowed: 0 to 2"),
    _case("qd-train-milestone-beyond-epochs", _set("quantize.demo-quant.qd_train", {
        "epochs": 3, "schedule": "multistep", "milestones": [4]}),
          "quantize.demo-quant.qd_train.milestones[0]: 4 is beyond the 3 epochs; allowed: 0 to 3"),
    _case("quantize-conflicting-experiments", lambda c: c["quantize"].update(again={
        **c["quantize"]["demo-quant"], "students": ["demo-s0"], "seeds": [1], "methods": ["dq"], "bits": [2],
        "dq": {"lr": 0.5}}),
          "quantize.demo-quant and quantize.again both ask for dq of demo-s0 (relu, seed 1, 2 bits, bucket 256) with "
          "different settings"),
    # ---- LIT --------------------------------------------------------------------------------------------------------
    _case("lit-teacher", _set("lit.demo-lit.teacher", "nobody"), "lit.demo-lit.teacher: 'nobody' names no teacher"),
    _case("lit-beta", _set("lit.demo-lit.lit.beta", 2), "lit.demo-lit.lit.beta: 2 is out of range; allowed: <= 1"),
    _case("lit-phase1-milestone-beyond-epochs", _set("lit.demo-lit.lit.milestones", [3]),
          "lit.demo-lit.lit.milestones[0]: 3 is beyond the 2 epochs; allowed: 0 to 2"),
    _case("lit-phase2-milestone-beyond-epochs", _set("lit.demo-lit.full_model.milestones", [1, 5]),
          "lit.demo-lit.full_model.milestones[1]: 5 is beyond the 2 epochs; allowed: 0 to 2"),
    _case("paper-lit-milestone-beyond-epochs", _set("lit.lit-cifar10.full_model.milestones", [55, 126]),
          "lit.lit-cifar10.full_model.milestones[1]: 126 is beyond the 125 epochs; allowed: 0 to 125", base="paper"),
    _case("lit-baseline-epochs", _set("lit.demo-lit.lit.epochs", 7),
          "lit.demo-lit.baselines: the baselines train with students.demo-text-student.train (4 epochs), but LIT's "
          "two phases take 9"),
    _case("lit-baseline-name", _set("lit.demo-lit.baselines", ["scratch", "teacher"]),
          "lit.demo-lit.baselines[1]: 'teacher' is not allowed; allowed: scratch, kd"),
    _case("lit-no-full-model", _delete("lit.demo-lit.full_model"),
          "lit.demo-lit: 'full_model' is a required property"),
    # ---- ESNAC ------------------------------------------------------------------------------------------------------
    _case("esnac-top-k-beyond-budget", _set("esnac.demo-esnac.search.top_k", 5),
          "esnac.demo-esnac.search.top_k: 5 is more than the 4 candidates the search evaluates (steps x "
          "candidates_per_step); allowed: 1 to 4"),
    _case("paper-esnac-top-k-beyond-budget", lambda c: c["esnac"]["esnac-cifar100"]["search"].update(
        steps=1, candidates_per_step=3),
          "esnac.esnac-cifar100.search.top_k: 4 is more than the 3 candidates", base="paper"),
    _case("esnac-history-keep", _set("esnac.demo-esnac.search.history_keep", 0),
          "esnac.demo-esnac.search.history_keep: 0 is out of range; allowed: > 0"),
    _case("esnac-teacher", _set("esnac.demo-esnac.teachers", ["nobody"]),
          "esnac.demo-esnac.teachers[0]: 'nobody' names no teacher"),
    _case("esnac-no-teachers", _set("esnac.demo-esnac.teachers", []),
          "esnac.demo-esnac.teachers: [] should be non-empty"),
    _case("esnac-strategy", _set("esnac.demo-esnac.strategies", ["bayes"]),
          "esnac.demo-esnac.strategies[0]: 'bayes' is not allowed; allowed: esnac, random"),
    _case("esnac-full-train-milestone-beyond-epochs", _set("esnac.demo-esnac.full_train.milestones", [3]),
          "esnac.demo-esnac.full_train.milestones[0]: 3 is beyond the 2 epochs; allowed: 0 to 2"),
    _case("esnac-kernel-alpha", _set("esnac.demo-esnac.search.kernel.alpha", 0),
          "esnac.demo-esnac.search.kernel.alpha: 0 is out of range; allowed: > 0"),
    _case("esnac-loss", _set("esnac.demo-esnac.search.loss", "kl"),
          "esnac.demo-esnac.search.loss: 'kl' is not allowed; allowed: logit_mse, cross_entropy"),
    _case("esnac-reference-teacher",
          _set("esnac.demo-esnac.reference_teachers", {"demo-teacher": "demo-esnac-teacher"}),
          "esnac.demo-esnac.reference_teachers: 'demo-teacher' is not one of the experiment's teachers"),
    _case("esnac-teacher-without-holdout", _delete("teachers.demo-esnac-teacher.validation"),
          "esnac.demo-esnac.teachers[0]: teacher 'demo-esnac-teacher' trains on the whole training set"),
    # ---- translation ------------------------------------------------------------------------------------------------
    _case("corpus-files-incomplete", _set("translation.corpora.onmt_integration", {"files": {"train_src": "/a"}}),
          "translation.corpora.onmt_integration.files: give every file of onmt_integration (test_src, test_tgt, "
          "train_src, train_tgt), got train_src"),
    _case("corpus-unknown", _set("translation.corpora.bogus", {}),
          "translation.corpora: 'bogus' is not allowed; allowed: onmt_integration, wmt13_europarl"),
    _case("corpus-vocab-size", _set("translation.corpora.synthetic_translation.vocab_size", 4),
          "translation.corpora.synthetic_translation.vocab_size: 4 is out of range; allowed: >= 5"),
    _case("translation-teacher-corpus", _set("translation.teachers.demo-nmt-lstm.corpus", "wmt13_europarl"),
          "translation.teachers.demo-nmt-lstm.corpus: 'wmt13_europarl' is not under translation.corpora"),
    _case("translation-model", _set("translation.teachers.demo-nmt-lstm.model", "gru_nmt"),
          "translation.teachers.demo-nmt-lstm.model: 'gru_nmt' is not allowed; allowed: transformer_nmt, lstm_nmt"),
    _case("translation-model-kwargs", _set("translation.teachers.demo-nmt-lstm.model_kwargs.hiden", 64),
          "translation.teachers.demo-nmt-lstm.model_kwargs: lstm_nmt takes no argument 'hiden'; allowed: layers"),
    _case("translation-student-activation", _set(
        "translation.students.demo-nmt-transformer-s.model_kwargs.activation", "swish"),
          "translation.students.demo-nmt-transformer-s.model_kwargs.activation: a student's FFN activation comes"),
    _case("translation-optimizer", _set("translation.teachers.demo-nmt-transformer.train.optimizer", "adam"),
          "translation.teachers.demo-nmt-transformer.train.optimizer: 'adam' is not allowed; allowed: noam, sgd"),
    _case("translation-decay", _set("translation.teachers.demo-nmt-transformer.train.decay", 1.5),
          "translation.teachers.demo-nmt-transformer.train.decay: 1.5 is out of range; allowed: <= 1"),
    _case("translation-qd-without-bits", _set("translation.experiments.demo-qd-nmt.bits", []),
          "translation.experiments.demo-qd-nmt.bits: methods include qd, so give the bit widths"),
    _case("translation-experiment-teacher", _set("translation.experiments.demo-qd-nmt.teacher", "nobody"),
          "translation.experiments.demo-qd-nmt.teacher: 'nobody' names no translation teacher"),
    _case("translation-lstm-activation", _set("translation.experiments.demo-qd-nmt.activations", ["lma8"]),
          "translation.experiments.demo-qd-nmt.activations: 'demo-nmt-lstm-s' is a lstm_nmt, which has no FFN"),
    _case("translation-no-methods", _set("translation.experiments.demo-lma-nmt.methods", []),
          "translation.experiments.demo-lma-nmt.methods: [] should be non-empty"),
    _case("translation-test-set-without-reference", _set("translation.test_sets.newstest2013", {"src": "/a"}),
          "translation.test_sets.newstest2013: 'ref' is a required property"),
    _case("translation-unknown-key", _set("translation.datasets", {}),
          "translation: unknown key 'datasets'; allowed keys: corpora, experiments, students, teachers, test_sets"),
]


@pytest.mark.parametrize(("base", "mutation", "expected"), CASES)
def test_a_bad_config_is_refused_with_one_line_naming_its_key(base: str, mutation: Mutation,
                                                              expected: tuple[str, ...]):
    config = json.loads(BASES[base])
    mutation(config)
    problems = _problems(config)
    assert len(problems) == 1, problems
    assert all(fragment in problems[0] for fragment in expected), problems


def test_the_fuzz_set_is_large_and_starts_from_valid_configs():
    assert len(CASES) + len(FILE_CASES) >= 71
    for base in BASES.values():
        assert _problems(json.loads(base)) == []


# ---- read from a file: keys given twice, YAML syntax errors ----------------------------------------------------------

def _line_of(text: str, fragment: str) -> int:
    """The line (from 1) where ``fragment`` first starts in ``text``."""
    return text[:text.index(fragment)].count("\n") + 1


def _edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# each: a config file's text, and its one problem ("{path}": the file's)
KEEPS_THE_LAST = "and YAML keeps only the last; allowed: each key once"
FILE_CASES = [
    pytest.param(bad := _edited(DEMO_TEXT, "\nstudents:\n", "\n  demo-teacher:  # again\n    dataset: synthetic\n"
                                                            "    model: demo_conv_student0\n\nstudents:\n"),
                 f"teachers.demo-teacher: given twice in {{path}} (lines {_line_of(bad, '  demo-teacher:')} and "
                 f"{_line_of(bad, '  demo-teacher:  # again')}), {KEEPS_THE_LAST}", id="teacher-twice"),
    pytest.param(bad := _edited(DEMO_TEXT, "    seeds: [1, 2]\n\nquantize:", "    seeds: [1, 2]\n    seeds: [3]\n\n"
                                                                          "quantize:"),
                 f"distill.demo.seeds: given twice in {{path}} (lines {_line_of(bad, '    seeds: [1, 2]')} and "
                 f"{_line_of(bad, '    seeds: [3]')}), {KEEPS_THE_LAST}", id="experiment-key-twice"),
    pytest.param(PAPER_TEXT + "teacher_outputs: cached\n",
                 f"teacher_outputs: given twice in {{path}} (lines {_line_of(PAPER_TEXT, 'teacher_outputs:')} and "
                 f"{PAPER_TEXT.count(chr(10)) + 1}), {KEEPS_THE_LAST}", id="paper-top-level-key-twice"),
    pytest.param(_edited(PAPER_TEXT, "  lma-bins:", "  lma-cifar10:"),
                 f"distill.lma-cifar10: given twice in {{path}} (lines {_line_of(PAPER_TEXT, '  lma-cifar10:')} and "
                 f"{_line_of(PAPER_TEXT, '  lma-bins:')}), {KEEPS_THE_LAST}", id="paper-experiment-twice"),
    pytest.param(_edited(DEMO_TEXT, "    dataset: synthetic\n    model: demo_conv_teacher\n",
                         "    dataset: synthetic\n      model: demo_conv_teacher\n"),
                 f"{{path}}, line {_line_of(DEMO_TEXT, '    model: demo_conv_teacher')}, column 12: not valid YAML: "
                 "mapping values are not allowed here", id="indentation"),
    pytest.param(bad := _edited(DEMO_TEXT, "seeds: [1, 2]\n\nquantize:", "seeds: [1, 2\n\nquantize:"),
                 f"{{path}}, line {_line_of(bad, chr(10) + 'quantize:') + 1}, column 9: not valid YAML: expected "
                 "',' or ']', but got ':' (while parsing a flow sequence)", id="unclosed-list"),
    pytest.param(bad := _edited(DEMO_TEXT, "\n    teacher: demo-text-teacher\n", "\n\tteacher: demo-text-teacher\n"),
                 f"{{path}}, line {_line_of(bad, chr(9))}, column 1: not valid YAML: found character '\\t' that cannot "
                 "start any token", id="tab"),
    pytest.param(bad := _edited(DEMO_TEXT, "<<: *demo_nmt_train, epochs: 8}", "<<: *demo_nmt_trian, epochs: 8}"),
                 f"{{path}}, line {_line_of(bad, '*demo_nmt_trian')}, column 19: not valid YAML: found undefined alias "
                 "'demo_nmt_trian'", id="unknown-anchor"),
    pytest.param(bad := _edited(DEMO_TEXT, "\n  demo-teacher:\n", "\n  [demo-teacher]:\n"),
                 f"{{path}}, line {_line_of(bad, '[demo-teacher]')}, column 3: not valid YAML: found unhashable key "
                 "(while constructing a mapping)", id="list-as-key"),
]


@pytest.mark.parametrize(("text", "expected"), FILE_CASES)
def test_a_bad_config_file_is_refused_with_one_line_saying_where(text: str, expected: str, tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, SCHEMA_PATH)
    problems = str(error.value).splitlines()[1:]
    assert len(problems) == 1 and expected.format(path=path) in problems[0], problems


def test_merged_keys_may_be_overridden_and_anchors_reused():
    """``<<: *anchor`` then a key of the anchor is an override, and an anchor used twice is one definition."""
    assert "<<: *demo_nmt_train, epochs: 8" in DEMO_TEXT and PAPER_TEXT.count("*lma_cifar10_train") > 1
    assert read_config_file(DEMO_PATH) == yaml.safe_load(DEMO_TEXT)
    assert read_config_file(PAPER_PATH) == yaml.safe_load(PAPER_TEXT)


# ---- the workflow ---------------------------------------------------------------------------------------------------

def _refusal(process: subprocess.CompletedProcess, directory: Path) -> str:
    """The output of a dry run that must have failed and left nothing behind in ``directory``."""
    assert process.returncode != 0
    assert not any(p.name in ("results", "resources", "logs") for p in directory.iterdir())
    return process.stdout + process.stderr


def test_the_dry_run_refuses_a_key_given_twice_in_a_configfile(tmp_path: Path):
    path = tmp_path / "demo.yaml"
    path.write_text(_edited(DEMO_TEXT, "  demo-s1:\n", "  demo-s0:\n    model: demo_conv_student1\n  demo-s1:\n"))
    output = _refusal(run_snakemake("-n", "--configfile", str(path), "--replace-workflow-config", "--directory",
                                    str(tmp_path), check=False), tmp_path)
    first, second = _line_of(DEMO_TEXT, "  demo-s0:"), _line_of(DEMO_TEXT, "  demo-s1:")
    assert f"students.demo-s0: given twice in {path} (lines {first} and {second})" in output


def test_the_dry_run_refuses_the_workflow_config_file_with_a_syntax_error(tmp_path: Path):
    """config.yaml (the Snakefile's configfile, read in the working directory) is checked before Snakemake reads it,
    which would say only that the file is not valid JSON or YAML."""
    (tmp_path / "config.yaml").write_text(_edited(PAPER_TEXT, "teacher_outputs: auto ", "teacher_outputs: auto:"))
    output = _refusal(run_snakemake("-n", "--directory", str(tmp_path), check=False), tmp_path)
    line = _line_of(PAPER_TEXT, "teacher_outputs: auto")
    assert f"config.yaml, line {line}, column 22: not valid YAML: mapping values are not allowed here" in output
