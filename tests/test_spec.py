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
    ("schedule=cosine", "schedule: got 'cosine', expected one of generic"),
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
