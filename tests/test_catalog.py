"""The torch-free catalogue (compresslib.catalog) agrees with the torch side it names: registered models, every
model's constructor arguments, the generated datasets, and the views of an image; the config schema's largest seed
is torch's."""

from __future__ import annotations

import inspect
import re
import sys
from unittest import mock

import pytest
import torch

from compresslib import catalog
from compresslib.config import load_schema
from compresslib.data.datasets import GENERATORS
from compresslib.experiments.teachers import VIEWS_PER_IMAGE
from compresslib.models import create_model, is_model, list_models, register_model
from compresslib.models.registry import _MODELS
from compresslib.training.teacher_views import view_count
from conftest import REPO


def test_every_listed_model_is_registered_by_its_module():
    assert catalog.list_models() == list_models()
    assert {name: constructor.__module__ for name, constructor in _MODELS.items()} == catalog.MODELS


def test_an_unlisted_model_cannot_be_registered():
    def tiny_net(num_classes: int = 10):  # not in compresslib.catalog.MODELS
        raise AssertionError("never built")

    registered = dict(_MODELS)
    with pytest.raises(ValueError, match="'tiny_net'.*not listed in compresslib.catalog.MODELS"):
        register_model(tiny_net)
    # refused before it is stored: the registry is as it was, and the name builds nothing
    assert _MODELS == registered and "tiny_net" not in list_models() and not is_model("tiny_net")
    with pytest.raises(ValueError, match="unknown model 'tiny_net'"):
        create_model("tiny_net")


def test_a_listed_name_from_another_module_cannot_replace_the_registered_model():
    def qd_conv_teacher(num_classes: int = 10):  # listed, but under compresslib.models.convnet, not this module
        raise AssertionError("never built")

    assert catalog.MODELS["qd_conv_teacher"] != qd_conv_teacher.__module__
    registered = dict(_MODELS)
    with pytest.raises(ValueError, match=re.escape(f"model 'qd_conv_teacher' ({qd_conv_teacher.__module__}) is not "
                                                   "listed in compresslib.catalog.MODELS under its module")):
        register_model(qd_conv_teacher)
    assert _MODELS == registered and _MODELS["qd_conv_teacher"] is not qd_conv_teacher


@pytest.mark.parametrize("name", sorted(catalog.TRANSLATION_MODEL_ARGUMENTS))
def test_translation_model_arguments_are_the_constructors(name: str):
    tiny = {"transformer_nmt": {"layers": 1, "d_model": 8, "heads": 2, "ffn": 8},
            "lstm_nmt": {"layers": 1, "hidden": 8, "embedding": 8}}[name]
    model_class = type(create_model(name, src_vocab=8, tgt_vocab=8, **tiny))
    parameters = [p for p in inspect.signature(model_class).parameters if p not in ("src_vocab", "tgt_vocab")]
    assert catalog.TRANSLATION_MODEL_ARGUMENTS[name] == tuple(parameters)


def _constructor_arguments(name: str) -> tuple[str, ...]:
    """The keyword arguments model ``name``'s registered constructor takes: its parameters, or, where it passes
    ``**kwargs`` on to its network class, those of the class's parameters it does not set itself (passing one of
    those raises TypeError; the class is replaced by a stand-in, so that no network is built)."""
    constructor = _MODELS[name]
    signature = inspect.signature(constructor, eval_str=True)
    named = [p.name for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    if len(named) == len(signature.parameters):
        return tuple(named)
    network = signature.return_annotation

    def passed_on(parameter: str) -> bool:
        try:
            constructor(**{parameter: None})
        except TypeError:
            return False
        return True

    with mock.patch.object(sys.modules[constructor.__module__], network.__name__):
        return tuple(filter(passed_on, inspect.signature(network).parameters))


def test_every_model_has_its_constructor_arguments_listed_once():
    assert sorted([*catalog.CLASSIFIER_MODEL_ARGUMENTS, *catalog.TRANSLATION_MODEL_ARGUMENTS]) == catalog.list_models()


@pytest.mark.parametrize("name", sorted(catalog.CLASSIFIER_MODEL_ARGUMENTS))
def test_classifier_model_arguments_are_the_constructors(name: str):
    arguments = _constructor_arguments(name)
    assert set(catalog.CLASSIFIER_RUN_ARGUMENTS) <= set(arguments)  # the training loop passes them to every one
    assert catalog.CLASSIFIER_MODEL_ARGUMENTS[name] == tuple(a for a in arguments
                                                             if a not in catalog.CLASSIFIER_RUN_ARGUMENTS)


def test_the_largest_seed_a_config_may_give_is_the_largest_torch_takes():
    largest = load_schema(REPO / "rules/schemas/config.schema.yaml")["$defs"]["seed"]["maximum"]
    torch.Generator().manual_seed(largest)  # as torch.manual_seed, which the runs call with their seed
    with pytest.raises(ValueError, match="Overflow"):
        torch.Generator().manual_seed(largest + 1)


def test_generated_datasets_and_views_per_image():
    assert tuple(GENERATORS) == catalog.GENERATED_DATASETS
    assert VIEWS_PER_IMAGE == view_count()
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known datasets: cifar10, cifar100"):
        catalog.get_dataset_info("mnist")
