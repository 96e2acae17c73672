"""The torch-free catalogue (compresslib.catalog) agrees with the torch side it names: registered models, the
translation models' arguments, the generated datasets, and the views of an image."""

from __future__ import annotations

import inspect

import pytest

from compresslib import catalog
from compresslib.data.datasets import GENERATORS
from compresslib.experiments.teachers import VIEWS_PER_IMAGE
from compresslib.models import create_model, list_models, register_model
from compresslib.models.registry import _MODELS
from compresslib.training.teacher_views import view_count


def test_every_listed_model_is_registered_by_its_module():
    assert catalog.list_models() == list_models()
    assert {name: constructor.__module__ for name, constructor in _MODELS.items()} == catalog.MODELS


def test_an_unlisted_model_cannot_be_registered():
    def tiny_net(num_classes: int = 10):  # not in compresslib.catalog.MODELS
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="'tiny_net'.*not listed in compresslib.catalog.MODELS"):
        register_model(tiny_net)
    assert not catalog.is_model("tiny_net")


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
