"""TrainSpec: overrides, type checks, validation messages, identity hash; schema defaults agree with it."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from compresslib.settings import SpecError, format_overrides, spec_hash
from compresslib.specs.training import KDSpec, TrainSpec, build_spec
from conftest import REPO


def test_overrides_are_typed_and_nested():
    spec = build_spec({"kind": "distill", "model": "qd_conv_student0"},
                      ["lr=0.1", "epochs=3", "kd.temperature=4", 'model_kwargs={"dropout": []}', "activation=lma8",
                       "milestones=[1, 2]", "mean=null"])
    assert spec.lr == 0.1 and spec.epochs == 3 and spec.activation == "lma8"
    assert spec.kd == KDSpec(temperature=4.0) and spec.model_kwargs == {"dropout": []}
    assert spec.milestones == [1, 2] and spec.mean is None
    assert isinstance(build_spec({}, ["lr=1"]).lr, float)  # ints are accepted for floats


@pytest.mark.parametrize(("override", "message"), [
    ("learning_rate=0.1", "unknown setting 'learning_rate'; allowed: kind, dataset, model"),
    ("kd.temp=3", "unknown setting 'kd.temp'; allowed: kd.temperature"),
    ("epochs=2.5", "epochs: got 2.5, expected int"),
    ("epochs=-1", "epochs: got -1, expected an integer >= 1"),
    ("nesterov=1", "nesterov: got 1, expected bool"),
    ("lr=0", "lr: got 0.0, expected a number > 0"),
    ("schedule=linear", "schedule: got 'linear', expected one of generic, cifar100, multistep, constant, cosine"),
    ("warmup_epochs=1.5", "warmup_epochs: got 1.5, expected int"),
    ("activation=gelu", "activation: unknown activation 'gelu'; allowed: relu"),
    ("activation=lma99", "lma needs a segment count K in 2..32"),
    ("kd.weight=1.5", "kd.weight: got 1.5, expected a number in [0, 1]"),
    ("validation=val", "validation: got 'val', expected one of test, holdout"),
    ("seed=one", "seed: got 'one', expected int"),
    ("epochs", "not of the form key=value"),
])
def test_bad_values_name_the_key(override: str, message: str):
    with pytest.raises(SpecError) as error:
        build_spec({}, [override])
    assert message in str(error.value)


def test_format_overrides_round_trips():
    values = {"kind": "distill", "model": "wide_resnet10_4", "model_kwargs": {"dropout": 0.3}, "lr": 0.1,
              "milestones": [5], "kd": {"temperature": 3.0, "weight": 0.5, "kl_reduction": "mean"},
              "labels": {"student": "s"}}
    overrides = format_overrides(values, TrainSpec)
    assert "kd.temperature=3.0" in overrides and 'model_kwargs={"dropout": 0.3}' in overrides
    assert build_spec({}, overrides) == build_spec(values)


def test_identity_hash_ignores_runtime_settings_only():
    base = build_spec({"lr": 0.1})
    assert spec_hash(base) == spec_hash(build_spec({"lr": 0.1, "threads": 8, "device": "cpu",
                                                    "labels": {"teacher": "x"}}))
    assert spec_hash(base) != spec_hash(build_spec({"lr": 0.2}))
    assert len(spec_hash(base)) == 64


@pytest.mark.parametrize(("values", "message"), [
    ({"schedule": "cosine", "epochs": 5, "warmup_epochs": 5},
     "warmup_epochs: got 5, expected an integer from 0 to epochs - 1 = 4 (the cosine decay needs at least one epoch)"),
    ({"schedule": "cosine", "warmup_epochs": -1}, "warmup_epochs: got -1, expected an integer from 0 to epochs - 1"),
    ({"schedule": "cosine", "lr_floor_fraction": -0.1},
     "lr_floor_fraction: got -0.1, expected a number in [0, 1) (the final rate as a fraction of lr)"),
    ({"schedule": "cosine", "lr_floor_fraction": 1}, "lr_floor_fraction: got 1.0, expected a number in [0, 1)"),
    ({"schedule": "multistep", "warmup_epochs": 2},
     "warmup_epochs: got 2, expected 0 unless schedule is cosine (the multistep schedule has no warmup or floor)"),
    ({"lr_floor_fraction": 0.1}, "lr_floor_fraction: got 0.1, expected 0 unless schedule is cosine (the generic"),
], ids=["warmup-as-long-as-the-run", "negative-warmup", "negative-floor", "floor-at-lr", "warmup-without-cosine",
        "floor-without-cosine"])
def test_cosine_settings_are_checked_with_the_key_named(values: dict, message: str):
    with pytest.raises(SpecError) as error:
        build_spec(values)
    assert str(error.value).startswith(message)  # one message, its key first


def test_settings_added_later_leave_earlier_runs_hashes_and_arguments_alone():
    """warmup_epochs and lr_floor_fraction came after runs were made: at their defaults they are in neither the
    identity nor a job's arguments, so those runs keep their hash (pinned from before they existed), checkpoints
    and Snakemake params; once set they are in both."""
    assert spec_hash(build_spec({})) == "a1580ff422dfa831ff754053b34ca58df3647fd5e5ad76ba1d7d86f2cf9d0782"
    distill = build_spec({"kind": "distill", "kd": {}, "lr": 0.1, "schedule": "multistep", "milestones": [3]})
    assert spec_hash(distill) == "144bbd491e87754eb74f31d374d95dc4ecb9d4c1a3a90dd25a888b3788c32ec0"
    assert "warmup_epochs" not in distill.identity() and distill.to_dict()["warmup_epochs"] == 0  # recorded
    # the schema fills the defaults in; the arguments leave them out
    assert format_overrides({"lr": 0.1, "warmup_epochs": 0, "lr_floor_fraction": 0.0}, TrainSpec) == ["lr=0.1"]
    cosine = {"schedule": "cosine", "epochs": 10, "warmup_epochs": 2, "lr_floor_fraction": 0.1}
    assert format_overrides(cosine, TrainSpec) == ["epochs=10", "lr_floor_fraction=0.1", 'schedule="cosine"',
                                                   "warmup_epochs=2"]
    spec = build_spec(cosine)
    assert spec.identity()["warmup_epochs"] == 2 and spec.identity()["lr_floor_fraction"] == 0.1
    assert spec_hash(spec) != spec_hash(build_spec(cosine | {"warmup_epochs": 0}))
    assert "warmup_epochs" not in build_spec(cosine | {"warmup_epochs": 0}).identity()


def test_schema_defaults_equal_trainspec_defaults():
    """config.yaml's defaults (the schema) and a hand run's defaults (TrainSpec) must not drift apart."""
    schema = yaml.safe_load((REPO / "rules/schemas/config.schema.yaml").read_text())
    train = schema["$defs"]["train"]["properties"]
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(TrainSpec)}
    assert {key: spec["default"] for key, spec in train.items()} == {key: defaults[key] for key in train}
    kd = schema["$defs"]["kd"]["properties"]
    assert {key: spec["default"] for key, spec in kd.items()} == dataclasses.asdict(KDSpec())
    assert set(train) <= set(defaults)


@pytest.mark.parametrize(("values", "message"), [
    # a kind that needs a group of settings the spec lacks
    ({"kind": "distill"}, "kind: a distill run needs kd settings"),
    ({"kind": "quantize", "kd": {}}, "kind: a quantize run needs quant settings"),
    ({"kind": "lit", "kd": {}}, "kind: a lit run needs lit settings"),
    # a group of settings the kind does not allow
    ({"kind": "teacher", "kd": {}}, "kind: a teacher run takes no kd settings (kd is set)"),
    ({"kind": "undistilled", "kd": {}}, "kind: a undistilled run takes no kd settings (kd is set)"),
    ({"kind": "distill", "kd": {}, "quant": {"method": "qd"}},
     "kind: a distill run takes no quant settings (quant is set)"),
    # no such kind
    ({"kind": "student"}, "kind: got 'student', expected one of teacher, undistilled, distill, quantize, lit, esnac"),
    # esnac is the full training of the ESNAC model, and only it
    ({"kind": "esnac", "model": "qd_conv_student0"},
     "kind: got 'esnac', expected esnac exactly for the model esnac_net (the full training of an architecture ESNAC "
     "found)"),
    ({"kind": "teacher", "model": "esnac_net"},
     "kind: got 'teacher', expected esnac exactly for the model esnac_net (the full training of an architecture "
     "ESNAC found)"),
], ids=["distill-without-kd", "quantize-without-quant", "lit-without-lit", "teacher-with-kd", "undistilled-with-kd",
        "distill-with-quant", "unknown-kind", "esnac-of-another-model", "esnac-model-as-teacher"])
def test_the_kind_must_fit_the_settings(values: dict, message: str):
    with pytest.raises(SpecError) as error:
        build_spec(values)
    assert str(error.value) == message


@pytest.mark.parametrize("values", [
    {"kind": "teacher"}, {"kind": "undistilled"}, {"kind": "distill", "kd": {}},
    {"kind": "quantize", "quant": {"method": "qd"}}, {"kind": "quantize", "quant": {"method": "qd"}, "kd": {}},
    {"kind": "lit", "kd": {}, "lit": {}}, {"kind": "esnac", "model": "esnac_net"},
], ids=["teacher", "undistilled", "distill", "quantize", "quantize-with-kd", "lit", "esnac"])
def test_each_kind_builds_with_the_settings_it_takes(values: dict):
    """The counterpart of the refusals above: they are about the kind, not about the groups themselves."""
    spec = build_spec(values)
    assert spec.kind == values["kind"]
    assert {key for key in ("kd", "quant", "lit") if getattr(spec, key) is not None} == {
        key for key in ("kd", "quant", "lit") if key in values}
