"""The torch-free catalogue (compresslib.catalog) agrees with the torch side it names: registered models, the
translation models' arguments, the generated datasets, and the views of an image."""

from __future__ import annotations

import inspect
import re

import pytest

from compresslib import catalog
from compresslib.data.datasets import GENERATORS
from compresslib.experiments.teachers import VIEWS_PER_IMAGE
from compresslib.models import create_model, is_model, list_models, register_model
from compresslib.models.registry import _MODELS
from compresslib.training.teacher_views import view_count


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


def test_generated_datasets_and_views_per_image():
    assert tuple(GENERATORS) == catalog.GENERATED_DATASETS
    assert VIEWS_PER_IMAGE == view_count()
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known datasets: cifar10, cifar100"):
        catalog.get_dataset_info("mnist")
