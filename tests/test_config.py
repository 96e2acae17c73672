"""config.yaml validation (a bad value stops the workflow before any job, naming the key) and the jobs it plans."""

from __future__ import annotations

import copy
import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from compresslib import experiments
from compresslib.config import load_schema, schema_errors
from compresslib.experiments import ConfigError, Job, Study, check_config, distill, load_config
from compresslib.experiments.distill import DistillStudent, TrainUndistilled
from compresslib.experiments.esnac import EsnacFullTrain, EsnacSearch
from compresslib.experiments.lit import LitTrain
from compresslib.experiments.quantize import PostTrainingQuantize, QuantizeTrain
from compresslib.experiments.teachers import TrainTeacher
from compresslib.specs.training import build_spec
from conftest import REPO, run_snakemake

SCHEMA_PATH = REPO / "rules/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
DEMO_PATH = REPO / "profiles/demo/config.yaml"
DEMO = yaml.safe_load(DEMO_PATH.read_text())


def _with_defaults(config: dict) -> dict:
    """What the workflow does first: schema validation that fills the defaults."""
    validate(config, str(SCHEMA_PATH))
    return config


def _paper() -> Study:
    """The paper's config.yaml, checked and planned."""
    return check_config(_with_defaults(yaml.safe_load((REPO / "config.yaml").read_text())))


def _values(study: Study, job: Job) -> dict:
    """The spec values of the study's planned job equal to ``job`` (planned with its experiment's settings)."""
    return study.job(type(job), job.wildcards()).spec_values(study)


def _demo(**changes) -> dict:
    config = copy.deepcopy(DEMO)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = config
        for key in parents:
            target = target[key]
        target[leaf] = value
    return config


@pytest.mark.parametrize(("change", "expected"), [
    ({"distill__demo__activations": ["relu", "gelu"]},
     "distill.demo.activations[1]: 'gelu' is not allowed; allowed: relu, prelu, swish, lma<K> (K in 2..32) or aplu<K>"),
    ({"students__demo-s0__train": {"epochs": -3}},
     "students.demo-s0.train.epochs: -3 is out of range; allowed: >= 1"),
    ({"distill__demo__seeds": [1, "two"]},
     "distill.demo.seeds[1]: 'two' is not an integer (an integer from 0 to 2**64 - 1"),
    ({"distill__demo__seeds": [1, 2.5]}, "distill.demo.seeds[1]: 2.5 is not an integer"),
    ({"students__demo-s0__kd": {"kl_reduction": "sum"}},
     "students.demo-s0.kd.kl_reduction: 'sum' is not allowed; allowed: batchmean, mean"),
    ({"teachers__demo-teacher__train": {"lr": 0.1, "learning_rate": 1}},
     "teachers.demo-teacher.train: unknown key 'learning_rate'; allowed keys: augment, batch_size"),
    ({"teachers__demo-teacher__dataset": "mnist"},
     "teachers.demo-teacher.dataset: 'mnist' is not allowed; allowed: cifar10, cifar100, synthetic"),
    ({"validation": {"policy": "val"}}, "validation.policy: 'val' is not allowed; allowed: test, holdout"),
])
def test_schema_errors_name_key_and_allowed_values(change: dict, expected: str):
    messages = schema_errors(_demo(**change), SCHEMA)
    assert any(expected in message for message in messages), messages


def test_names_that_would_break_paths_are_refused():
    config = _demo()
    config["students"]["s.0"] = config["students"].pop("demo-s0")
    assert any("'s.0' is not allowed; allowed: letters, digits" in m for m in schema_errors(config, SCHEMA))


@pytest.mark.parametrize(("change", "expected"), [
    ({"distill__demo__teacher": "big-teacher"},
     "distill.demo.teacher: 'big-teacher' names no teacher; allowed: demo-teacher"),
    ({"distill__demo__students": ["demo-s0", "demo-s9"]},
     "distill.demo.students[1]: 'demo-s9' names no student; allowed: demo-s0, demo-s1"),
    ({"students__demo-s0__model": "resnet9000"},
     "students.demo-s0.model: 'resnet9000' is not a registered classifier model"),
    ({"distill__demo__activations": ["lma40"]}, "lma needs a segment count K in 2..32, got 40"),
    ({"quantize__demo-quant__students": ["demo-s7"]},
     "quantize.demo-quant.students[0]: 'demo-s7' names no student; allowed: demo-s0, demo-s1"),
    ({"quantize__demo-quant__teacher": "nobody"}, "quantize.demo-quant.teacher: 'nobody' names no teacher"),
    ({"teachers__demo-teacher__dataset": "synthetic_text",
      "teachers__demo-teacher__normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}},
     "teachers.demo-teacher.normalization: synthetic_text is text (character ids go to an embedding), which takes "
     "no normalisation; leave it null"),
    ({"data__extracted": {"synthetic_text": "/data"}},
     "data.extracted.synthetic_text: not a downloadable dataset; allowed: cifar10, cifar100, amazon_review_full"),
])
def test_cross_reference_errors(change: dict, expected: str):
    config = _with_defaults(_demo(**change))
    with pytest.raises(ConfigError, match="invalid config") as error:
        check_config(config)
    assert expected in str(error.value)


def test_matrix_expansion_deduplicates_shared_runs():
    study = _paper()
    asked = set(distill.jobs(study))  # the distill experiments' runs, among the DAG's distilled students
    jobs = [job for job in study.of_type(DistillStudent) if job in asked]
    assert len(jobs) == len(set(jobs)) == 3 * 5 * 5 + 3 * 10 * 5 - 3 * 2 * 5 + 2 * 5 * 5  # lma8/aplu8 shared
    assert {job.activation for job in jobs if job.teacher == "wrn16-10"} == {
        "relu", "prelu", "swish", "aplu8", "lma8"}
    esnac_teachers = [f"esnac-{net}-{data}{full}" for data in ("c10", "c100")
                      for net in ("vgg19", "resnet18", "resnet34", "shufflenet") for full in ("", "-full")]
    assert [job.teacher for job in study.of_type(TrainTeacher)] == [
        "conv-teacher", "wrn16-10", "resnet110", "vdcnn17", "vdcnn29", *esnac_teachers]


def test_quantize_matrix_and_settings_of_each_method():
    study = _paper()
    methods = Counter(job.method for job in study.of_type(QuantizeTrain, PostTrainingQuantize))
    # QD: CIFAR-10 3 students x 3 seeds x 2 bits, CIFAR-100 2 students, joint 3 students x 2 activations x 5 seeds x 2
    # bits; DQ: CIFAR-10 3 x 3 at 4 bits and at 2 bits, CIFAR-100 2; PM: bucket 256 and none, CIFAR-100 2
    assert methods == {"qd": 18 + 2 + 60, "dq": 9 + 9 + 2, "pm": 18 + 18 + 2}
    qd = _values(study, QuantizeTrain("cifar10", "conv-teacher", "conv-s1", "qd", 8, 256, "lma8", 5))
    assert qd["lr"] == 0.001 and qd["batch_size"] == 64 and qd["kd"]["kl_reduction"] == "batchmean"  # main_joint
    assert qd["quant"] == {"method": "qd", "bits": 8, "bucket_size": 256, "quantize_first_last": False,
                           "skip_by": "layers"}
    dq = _values(study, QuantizeTrain("cifar10", "conv-teacher", "qd-s2", "dq", 2, 256, "relu", 3))
    assert dq["epochs"] == 20 and dq["lr"] == 1e-6 and dq["model_kwargs"] == {"dropout": []}
    assert dq["quant"]["points_init"] == "quantiles" and dq["quant"]["auto_bits"] is True
    build_spec(dq)  # every qd/dq setting is a valid TrainSpec
    build_spec(qd)
    pm = _values(study, PostTrainingQuantize("cifar10", "conv-teacher", "qd-s0", "pm", 2, None, "relu", 1))
    assert pm == {"quant": {"method": "pm", "bits": 2, "bucket_size": None, "quantize_first_last": False,
                            "skip_by": "layers"}}
    # dq and pm start from distilled students; the references add the undistilled ones
    references = set(study.jobs_of("quantize"))
    assert len({job for job in references if isinstance(job, DistillStudent)}) == 9 + 2 + 30
    assert len({job for job in references if isinstance(job, TrainUndistilled)}) == 9


def test_two_experiments_may_not_give_one_run_different_settings():
    config = _demo()
    config["quantize"]["again"] = copy.deepcopy(config["quantize"]["demo-quant"]) | {"dq": {"lr": 0.5}}
    with pytest.raises(ConfigError, match=r"quantize.demo-quant and quantize.again both ask for dq of demo-s0 "
                                          r"\(relu, seed 1, 2 bits, bucket 256\) with different settings"):
        check_config(_with_defaults(config))
    config["quantize"]["again"]["dq"] = copy.deepcopy(config["quantize"]["demo-quant"]["dq"])
    check_config(_with_defaults(config))  # the same run asked for twice with the same settings is one run


def test_a_path_outside_every_experiment_runs_only_when_the_config_entries_define_it():
    study = check_config(_with_defaults(_demo()))
    teacher = TrainTeacher("synthetic", "demo-teacher", 7)  # another seed of a teacher
    assert teacher not in study.jobs
    job = study.job(TrainTeacher, {"dataset": "synthetic", "teacher": "demo-teacher", "seed": "7"})
    assert teacher.spec_values(study)["seed"] == 7
    # the planned seed's recipe, on the teacher's dataset, with only the seed changed
    arguments = shlex.split(job.arguments(study))
    assert "seed=7" in arguments and 'dataset="synthetic"' in arguments and 'kind="teacher"' in arguments
    planned = study.job(TrainTeacher, {"dataset": "synthetic", "teacher": "demo-teacher", "seed": "1"})
    assert planned in study.jobs
    assert [a for a in arguments if a != "seed=7"] == [
        a for a in shlex.split(planned.arguments(study)) if a != "seed=1"]
    assert job.inputs(study) == {"data": "resources/synthetic/dataset.pt"}
    assert job.outputs()["record"] == "results/teachers/synthetic/demo-teacher/seed7/record.json"
    # any student of any teacher, activation and seed: the student's recipe on the teacher's inputs
    student = DistillStudent("synthetic", "demo-teacher", "demo-s1", "aplu4", 9)
    assert student not in study.jobs
    values = study.job(DistillStudent, student.wildcards()).spec_values(study)
    assert (values["kind"], values["activation"], values["seed"], values["labels"]["student"]) == (
        "distill", "aplu4", 9, "demo-s1")
    assert study.job(TrainUndistilled, student.wildcards()).spec_values(study)["kind"] == "undistilled"
    with pytest.raises(ConfigError, match=r"^results/teachers/synthetic_text/demo-teacher/seed1: teacher "
                                          r"demo-teacher trains on synthetic, not synthetic_text$"):
        study.job(TrainTeacher, {"dataset": "synthetic_text", "teacher": "demo-teacher", "seed": "1"})
    # a run whose settings come from an experiment exists only where an experiment asks for it
    stray = QuantizeTrain("synthetic", "demo-teacher", "demo-s0", "qd", 3, 256, "relu", 1)
    with pytest.raises(ConfigError, match=r"^results/quantize/synthetic/demo-teacher/demo-s0/qd-b3-k256/relu/seed1 "
                                          r"is not a run of any quantize experiment in the config$"):
        study.job(QuantizeTrain, stray.wildcards())


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path: Path):
    """Several schema problems at once: the workflow lists them all and creates nothing."""
    bad = _demo(distill__demo__activations=["relu", "gelu"], distill__demo__seeds=[1, "x"])
    bad["teachers"]["demo-teacher"]["train"]["epochs"] = -1
    process = run_snakemake("-n", "--configfile", str(_write(tmp_path, bad)), "--replace-workflow-config",
                            "--directory", str(tmp_path), check=False)
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "invalid config:" in output
    assert "distill.demo.activations[1]: 'gelu' is not allowed" in output
    assert "distill.demo.seeds[1]: 'x' is not an integer" in output
    assert "teachers.demo-teacher.train.epochs: -1 is out of range; allowed: >= 1" in output
    assert not any(p.name in ("results", "resources", "logs") for p in tmp_path.iterdir())


def test_snakemake_reports_a_missing_teacher(tmp_path: Path):
    process = run_snakemake("-n", "--configfile", str(_write(tmp_path, _demo(distill__demo__teacher="nobody"))),
                            "--replace-workflow-config", "--directory", str(tmp_path), check=False)
    assert process.returncode != 0
    assert "distill.demo.teacher: 'nobody' names no teacher; allowed: demo-esnac-teacher, demo-teacher" in (
        process.stdout + process.stderr)


def test_lit_runs_take_the_students_recipe_and_the_experiments_phases():
    study = _paper()
    assert [(job.teacher, job.student, job.seed) for job in study.of_type(LitTrain)] == [
        ("resnet110", "lit-resnet20", 1), ("resnet110", "lit-resnet20", 2), ("resnet110", "lit-resnet20", 3),
        ("vdcnn17", "lit-vdcnn9", 1), ("vdcnn29", "lit-vdcnn17", 1)]
    cifar = build_spec(_values(study, LitTrain("cifar10", "resnet110", "lit-resnet20", 2)))
    assert (cifar.lit.epochs, cifar.lit.lr, cifar.lit.milestones, cifar.lit.beta) == (175, 0.1, [100], 0.75)
    assert (cifar.lit.combine, cifar.lit.optimizer) == ("halved", "shared")
    assert (cifar.epochs, cifar.lr, cifar.milestones, cifar.schedule) == (125, 0.01, [55], "multistep")
    assert (cifar.batch_size, cifar.weight_decay, cifar.nesterov, cifar.seed) == (32, 0.0001, False, 2)
    assert cifar.mean == [0.485, 0.456, 0.406] and cifar.kd.weight == 0.05 and cifar.kd.soft_loss == "cross_entropy"
    assert cifar.labels == {"dataset": "cifar10", "teacher": "resnet110", "student": "lit-resnet20"}
    vdcnn = build_spec(_values(study, LitTrain("amazon_review_full", "vdcnn17", "lit-vdcnn9", 1)))
    assert (vdcnn.lit.optimizer, vdcnn.lit.gamma, vdcnn.augment, vdcnn.model) == ("per_section", 0.5, False, "vdcnn9")
    # the baselines: the same student from scratch and with plain KD, at LIT's 300 / 25 epochs
    for baseline in (TrainUndistilled, DistillStudent):  # scratch, kd
        jobs = [job for job in study.jobs_of("lit") if isinstance(job, baseline)]
        assert [(job.teacher, job.student, job.activation, job.seed) for job in jobs][-2:] == [
            ("vdcnn17", "lit-vdcnn9", "relu", 1), ("vdcnn29", "lit-vdcnn17", "relu", 1)]
        assert len(jobs) == 5
    assert study.config["students"]["lit-resnet20"]["train"]["epochs"] == 175 + 125


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c["lit"]["demo-lit"].update(teacher="nobody"), "lit.demo-lit.teacher: 'nobody' names no teacher"),
    (lambda c: c["lit"]["demo-lit"].update(student="ghost"), "lit.demo-lit.student: 'ghost' names no student"),
    (lambda c: c["lit"].update(again=copy.deepcopy(c["lit"]["demo-lit"])),
     "lit.again: lit.demo-lit already trains demo-text-student from demo-text-teacher"),
    (lambda c: c["lit"]["demo-lit"]["lit"].update(epochs=7),
     "lit.demo-lit.baselines: the baselines train with students.demo-text-student.train (4 epochs), but LIT's two "
     "phases take 9"),
])
def test_lit_experiment_errors(change, expected):
    config = _demo()
    change(config)
    with pytest.raises(ConfigError, match="invalid config") as error:
        check_config(_with_defaults(config))
    assert expected in str(error.value)


def test_a_text_recipe_with_augmentation_is_refused_before_any_job():
    config = _demo()
    del config["teachers"]["demo-text-teacher"]["train"]["augment"]  # the schema's default is true
    with pytest.raises(ConfigError, match=r"teachers.demo-text-teacher: augment: got True, expected false for the "
                                          r"text dataset synthetic_text"):
        check_config(_with_defaults(config))


def test_esnac_searches_take_their_teachers_held_out_split_and_the_experiments_settings():
    from compresslib.specs.esnac import SearchSpec
    from compresslib.experiments.esnac import EsnacFullTrain, EsnacSearch
    from compresslib.experiments.teachers import teacher_job
    from compresslib.settings import build_settings
    from compresslib.specs.training import ESNAC_MODEL

    study = _paper()
    jobs = study.of_type(EsnacSearch)
    assert len(jobs) == 4 * 2 * 2 and {job.strategy for job in jobs} == {"esnac", "random"}
    job = next(j for j in jobs if j.teacher == "esnac-resnet34-c100" and j.strategy == "random")
    search = build_settings(SearchSpec, job.spec_values(study))
    assert (search.dataset, search.seed, search.steps, search.candidates_per_step, search.acquisition_samples) == (
        "cifar100", 127, 20, 8, 1000)
    assert (search.holdout_size, search.holdout_split, search.top_k, search.epochs, search.loss) == (
        5000, "last", 4, 10, "logit_mse")
    assert search.labels == {"dataset": "cifar100", "teacher": "esnac-resnet34-c100", "strategy": "random"}
    final = _values(study, EsnacFullTrain(job.dataset, job.teacher, job.strategy, job.seed, rank=2))
    full = build_spec(final | {"model": ESNAC_MODEL})  # the architecture file gives the model
    assert (full.epochs, full.lr, full.milestones, full.nesterov, full.weight_decay, full.validation) == (
        300, 0.01, [100, 200], False, 0.0005, "test")
    assert full.labels == {"dataset": "cifar100", "teacher": "esnac-resnet34-c100", "strategy": "random",
                           "search_seed": 127, "rank": 2}
    # the searched teacher trains on the first 45,000 images; its reference twin on all 50,000
    searched, reference = (build_spec(teacher_job(study.config, name).spec_values(study))
                           for name in ("esnac-resnet34-c100", "esnac-resnet34-c100-full"))
    assert (searched.validation, searched.holdout_split, searched.holdout_size) == ("holdout", "last", 5000)
    assert reference.validation == "test" and searched.mean == reference.mean == [0.4914, 0.4822, 0.4465]


def test_esnac_search_schema_defaults_equal_searchspec_defaults():
    import dataclasses

    from compresslib.specs.esnac import KernelSpec, SearchSpec

    experiment = SCHEMA["properties"]["esnac"]["additionalProperties"]["properties"]
    search = {key: spec["default"] for key, spec in experiment["search"]["properties"].items() if key != "kernel"}
    assert search == {key: getattr(SearchSpec(), key) for key in search}
    kernel = experiment["search"]["properties"]["kernel"]["properties"]
    assert {key: spec["default"] for key, spec in kernel.items()} == dataclasses.asdict(KernelSpec())


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c["esnac"]["demo-esnac"].update(teachers=["nobody"]),
     "esnac.demo-esnac.teachers[0]: 'nobody' names no teacher"),
    (lambda c: c["teachers"]["demo-esnac-teacher"].pop("validation"),
     "esnac.demo-esnac.teachers[0]: teacher 'demo-esnac-teacher' trains on the whole training set"),
    (lambda c: c["esnac"]["demo-esnac"].update(teachers=["demo-text-teacher"]),
     "ESNAC compresses image classifiers; 'demo-text-teacher' is trained on synthetic_text"),
    (lambda c: c["esnac"]["demo-esnac"].update(reference_teachers={"demo-esnac-teacher": "demo-text-teacher"}),
     "esnac.demo-esnac.reference_teachers.demo-esnac-teacher: 'demo-text-teacher' is trained on synthetic_text"),
    (lambda c: c["esnac"]["demo-esnac"].update(reference_teachers={"demo-teacher": "demo-esnac-teacher"}),
     "esnac.demo-esnac.reference_teachers: 'demo-teacher' is not one of the experiment's teachers"),
    (lambda c: c["esnac"].update(again={**copy.deepcopy(c["esnac"]["demo-esnac"]), "search": {"epochs": 3}}),
     "esnac.demo-esnac and esnac.again both search demo-esnac-teacher (esnac, seed 1) with different"),
    (lambda c: c["esnac"]["demo-esnac"]["search"].update(history_keep=0),
     "esnac.demo-esnac.search.history_keep: 0 is out of range; allowed: > 0"),
])
def test_esnac_experiment_errors(change, expected):
    config = _demo()
    change(config)
    _assert_refused(config, expected)


def _assert_refused(config: dict, expected: str) -> None:
    """The schema, or else check_config, refuses ``config`` with a message containing ``expected``."""
    messages = schema_errors(config, SCHEMA)
    if messages:
        assert any(expected in message for message in messages), messages
        return
    with pytest.raises(ConfigError, match="invalid config") as error:
        check_config(_with_defaults(config))
    assert expected in str(error.value)


# ---- translation ------------------------------------------------------------------------------------------------

def test_translation_matrix_mirrors_lma_and_qd():
    from compresslib.experiments.corpora import PrepareCorpus
    from compresslib.experiments.translation import TrainTranslationStudent, teacher_job
    from compresslib.settings import build_settings
    from compresslib.specs.translation import TranslationSpec

    study = _paper()
    assert [job.corpus for job in study.of_type(PrepareCorpus)] == ["onmt_integration", "wmt13_europarl"]
    jobs = study.of_type(TrainTranslationStudent)
    by_teacher = Counter(job.teacher for job in jobs)
    # LMA: 3 (integration) and 2 (WMT13) students x 5 activations x 5 seeds; QD integration: 3 students x (alone,
    # word KD, sequence KD, QD at 2/4/8 bits); QD WMT13: the 1 x 550 student (word KD, 2-bit QD) and the smaller one
    assert by_teacher == {"transformer-integ": 75, "transformer-wmt": 50, "lstm-integ": 18, "lstm-wmt": 3}
    assert {job.activation for job in jobs if job.teacher.startswith("lstm")} == {"none"}
    lma = build_settings(TranslationSpec, _values(study, TrainTranslationStudent(
        "onmt_integration", "transformer-integ", "transformer-s2", "word-kd", None, None, "lma8", 4)))
    assert lma.model_kwargs == {"layers": 3, "d_model": 64, "activation": "lma8"} and lma.seed == 4
    assert (lma.optimizer, lma.lr, lma.warmup, lma.batch_tokens, lma.eval_batch_tokens, lma.epochs) == (
        "noam", 1.0, 8000, 3192, 1024, 15)
    assert (lma.kd.temperature, lma.kd.weight, lma.quant) == (1.0, 0.7, None)
    assert lma.labels == {"corpus": "onmt_integration", "teacher": "transformer-integ", "student": "transformer-s2",
                          "method": "word-kd", "activation": "lma8"}
    qd = build_settings(TranslationSpec, _values(study, TrainTranslationStudent(
        "wmt13_europarl", "lstm-wmt", "lstm-wmt-s550", "qd", 2, 256, "none", 1)))
    assert (qd.quant.bits, qd.quant.bucket_size, qd.quant.quantize_first_last, qd.kd.weight) == (2, 256, False, 0.7)
    assert (qd.optimizer, qd.lr, qd.epochs, qd.start_decay_epoch, qd.model_kwargs) == (
        "sgd", 1.0, 5, 8, {"layers": 1, "hidden": 550})
    seq = _values(study, TrainTranslationStudent("onmt_integration", "lstm-integ", "lstm-s256", "seq-kd", None, None,
                                                 "none", 1))
    assert "kd" not in seq and "quant" not in seq and seq["labels"]["method"] == "seq-kd"
    teacher = build_settings(TranslationSpec, teacher_job(study.config, "transformer-wmt").spec_values(study))
    assert (teacher.corpus, teacher.model_kwargs, teacher.kd) == ("wmt13_europarl", {"layers": 6, "d_model": 512},
                                                                  None)
    assert teacher.labels == {"corpus": "wmt13_europarl", "teacher": "transformer-wmt"}


def test_translation_schema_defaults_equal_translationspec_defaults():
    import inspect

    from compresslib.data.synthetic_translation import make_synthetic_translation
    from compresslib.specs.translation import NmtKDSpec, TranslationSpec

    defs = SCHEMA["$defs"]
    train = {key: spec["default"] for key, spec in defs["translation_train"]["properties"].items()}
    assert train == {key: getattr(TranslationSpec(), key) for key in train}
    kd = SCHEMA["properties"]["translation"]["properties"]["students"]["additionalProperties"]["properties"]["kd"]
    assert {key: spec["default"] for key, spec in kd["properties"].items()} == vars(NmtKDSpec())
    # a synthetic corpus without options is generated with make_synthetic_translation's defaults
    synthetic = {key: spec["default"] for key, spec in defs["synthetic_translation"]["properties"].items()}
    assert synthetic == {name: parameter.default for name, parameter
                         in inspect.signature(make_synthetic_translation).parameters.items()}


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t["experiments"]["demo-qd-nmt"].update(teacher="nobody"),
     "translation.experiments.demo-qd-nmt.teacher: 'nobody' names no translation teacher"),
    (lambda t: t["experiments"]["demo-qd-nmt"].update(students=["ghost"]),
     "translation.experiments.demo-qd-nmt.students[0]: 'ghost' names no translation student"),
    (lambda t: t["experiments"]["demo-qd-nmt"].update(activations=["lma8"]),
     "translation.experiments.demo-qd-nmt.activations: 'demo-nmt-lstm-s' is a lstm_nmt, which has no FFN activation"),
    (lambda t: t["experiments"]["demo-lma-nmt"].update(activations=["lma99"]), "lma needs a segment count K"),
    (lambda t: t["experiments"]["demo-qd-nmt"].update(bits=[]),
     "translation.experiments.demo-qd-nmt.bits: methods include qd, so give the bit widths"),
    (lambda t: t["teachers"]["demo-nmt-lstm"].update(corpus="wmt13_europarl"),
     "translation.teachers.demo-nmt-lstm.corpus: 'wmt13_europarl' is not under translation.corpora"),
    (lambda t: t["corpora"]["synthetic_translation"].update(test_sets=["newstest2013"]),
     "translation.corpora.synthetic_translation.test_sets[0]: newstest2013 has no x-src-x-tgt pair"),
    (lambda t: t["corpora"]["synthetic_translation"].update(files={"train_src": "/data/a"}),
     "translation.corpora.synthetic_translation.files: synthetic_translation is generated"),
    (lambda t: t["corpora"].update(onmt_integration={"files": {"train_src": "/data/a"}, "synthetic": {}}),
     "translation.corpora.onmt_integration.files: give every file of onmt_integration (test_src, test_tgt, "
     "train_src, train_tgt)"),
    (lambda t: t["students"]["demo-nmt-transformer-s"]["model_kwargs"].update(activation="swish"),
     "translation.students.demo-nmt-transformer-s.model_kwargs.activation: a student's FFN activation comes from"),
    (lambda t: t["teachers"]["demo-nmt-lstm"]["train"].update(optimizer="adam"),
     "translation.teachers.demo-nmt-lstm.train.optimizer: 'adam' is not allowed; allowed: noam, sgd"),
    (lambda t: t["teachers"]["demo-nmt-lstm"]["model_kwargs"].update(hiden=64),
     "translation.teachers.demo-nmt-lstm.model_kwargs: lstm_nmt takes no argument 'hiden'; allowed: layers, hidden"),
    (lambda t: t["experiments"].update(again={**copy.deepcopy(t["experiments"]["demo-qd-nmt"]),
                                              "quantize_first_last": True}),
     "translation.experiments.demo-qd-nmt and translation.experiments.again both ask for qd-b4-k256 of "
     "demo-nmt-lstm-s (none, seed 1) with different settings"),
])
def test_translation_experiment_errors(change, expected):
    config = _demo()
    change(config["translation"])
    _assert_refused(config, expected)


def test_load_config_fills_the_defaults_snakemake_fills():
    ours = load_config(DEMO_PATH, SCHEMA_PATH).config
    theirs = yaml.safe_load(DEMO_PATH.read_text())
    validate(theirs, str(SCHEMA_PATH))
    assert ours == theirs


def test_load_config_refuses_a_bad_config_naming_every_problem(tmp_path: Path):
    config = yaml.safe_load(DEMO_PATH.read_text())
    config["distill"]["demo"]["activations"] = ["gelu"]
    config["students"]["demo-s0"]["train"]["epochs"] = 0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "c.yaml", SCHEMA_PATH)
    assert "distill.demo.activations[0]: 'gelu' is not allowed" in str(error.value)
    assert "students.demo-s0.train.epochs: 0 is out of range" in str(error.value)


def test_unfinished_runs_are_planned_run_folders_without_their_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What the workflow asks for again at start: every planned run whose folder exists (it started) without its
    record.json (it did not finish), whatever else the folder holds; folders of jobs that are no runs do not count."""
    study = load_config(DEMO_PATH, SCHEMA_PATH)
    monkeypatch.chdir(tmp_path)
    assert experiments.unfinished_runs(study.jobs) == []
    teacher = study.job(TrainTeacher, {"dataset": "synthetic", "teacher": "demo-teacher", "seed": "1"})
    stopped = study.job(DistillStudent, {"dataset": "synthetic", "teacher": "demo-teacher", "student": "demo-s0",
                                         "activation": "lma8", "seed": "2"})
    finished = study.job(DistillStudent, {**stopped.wildcards(), "seed": "1"})
    search = study.job(EsnacSearch, {"dataset": "synthetic", "teacher": "demo-esnac-teacher", "strategy": "esnac",
                                     "seed": "1"})
    full_training = study.job(EsnacFullTrain, {**search.wildcards(), "rank": "0"})
    Path(teacher.folder()).mkdir(parents=True)  # Snakemake made it, the job was stopped before its first epoch
    Path(stopped.folder()).mkdir(parents=True)
    Path(stopped.folder(), "checkpoint.pt").touch()
    Path(finished.folder()).mkdir(parents=True)
    Path(finished.folder(), "record.json").touch()
    Path(full_training.folder()).mkdir(parents=True)  # inside its search's folder, which has no record either
    Path(full_training.folder(), "checkpoint.pt").touch()
    Path("resources/synthetic").mkdir(parents=True)  # prepare_dataset's folder, no dataset.pt: not a run
    assert experiments.unfinished_runs(study.jobs) == [teacher, stopped, search, full_training]
    # the full training is known to Snakemake once its search has run: the workflow asks for it after the search
    assert [job.checkpoint() for job in (teacher, search, full_training)] == [None, None, search]
