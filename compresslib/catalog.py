"""The names a config can refer to: datasets, translation corpora and models, without torch.

The workflow's start-up and ``compresslib.experiments``' config checks read this module, and neither may load
torch (a dry run must stay cheap). The torch side checks itself against it: ``compresslib.models`` refuses to
register a constructor the catalogue does not list (and a test checks that every listed name is registered, with
every model's constructor arguments), and ``compresslib.data`` builds its dataset files from the entries here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DOCUMENT_LENGTH", "DatasetInfo", "DATASETS", "GENERATED_DATASETS", "HOLDOUT_SPLITS", "get_dataset_info",
           "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID", "CorpusInfo", "CORPORA", "corpus_info", "MODELS",
           "TRANSLATION_MODEL_ARGUMENTS", "CLASSIFIER_RUN_ARGUMENTS", "CLASSIFIER_MODEL_ARGUMENTS", "is_model",
           "list_models"]

# ---- datasets -------------------------------------------------------------------------------------------------------

DOCUMENT_LENGTH = 1014  # characters per encoded document (Zhang et al.)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    kind: Literal["image", "text"]
    # one example's shape; None: any size on that axis, the same in both splits (a generator's option)
    input_shape: tuple[int | None, ...]
    mean: tuple[float, ...] | None = None  # recipe normalisation of images (QD/LMA), overridable per run
    std: tuple[float, ...] | None = None
    split_sizes: tuple[int, int] | None = None  # (train, test) examples; None: a generator's options decide

    def __post_init__(self) -> None:
        if (self.kind == "image") != (self.mean is not None and self.std is not None):
            raise ValueError(f"dataset {self.name!r}: images need mean and std, text takes neither")


_CIFAR_SHAPE = (3, 32, 32)
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, "image", _CIFAR_SHAPE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           split_sizes=(50_000, 10_000)),
    "cifar100": DatasetInfo("cifar100", 100, "image", _CIFAR_SHAPE, mean=(0.5071, 0.4867, 0.4408),
                            std=(0.2675, 0.2565, 0.2761), split_sizes=(50_000, 10_000)),
    "synthetic": DatasetInfo("synthetic", 10, "image", _CIFAR_SHAPE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "amazon_review_full": DatasetInfo("amazon_review_full", 5, "text", (DOCUMENT_LENGTH,),
                                      split_sizes=(3_000_000, 650_000)),
    "synthetic_text": DatasetInfo("synthetic_text", 5, "text", (None,)),
}
# built by a generator from the options in config ``data.<name>`` (no download)
GENERATED_DATASETS: tuple[str, ...] = ("synthetic", "synthetic_text")
HOLDOUT_SPLITS = ("random", "last")  # which training examples a held-out split takes: seeded, or the last ones


def get_dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


# ---- translation corpora ------------------------------------------------------------------------------------------

# the special token ids of every prepared corpus's SentencePiece models, which the translation models use too
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    src_lang: str
    tgt_lang: str
    files: dict[str, str] = field(default_factory=dict)  # role -> official URL; empty for a generated corpus
    description: str = ""


_ONMT = "https://raw.githubusercontent.com/OpenNMT/IntegrationTesting/master/data/"
CORPORA: dict[str, CorpusInfo] = {
    "onmt_integration": CorpusInfo(
        "onmt_integration", "de", "en",
        {"train_src": _ONMT + "de-train-clean.200K.txt", "train_tgt": _ONMT + "en-train-clean.200K.txt",
         "test_src": _ONMT + "de-val-clean.10K.txt", "test_tgt": _ONMT + "en-val-clean.10K.txt"},
        "OpenNMT integration-test data, 200 K training pairs; the 10 K validation pairs are the test set (QD/LMA)",
    ),
    "wmt13_europarl": CorpusInfo(
        "wmt13_europarl", "de", "en",
        {"archive": "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz"},
        "WMT13 Europarl v7 de-en; blank German lines dropped, first 90 % train, last 10 % test (QD)",
    ),
    "synthetic_translation": CorpusInfo(
        "synthetic_translation", "x-src", "x-tgt", {},
        "deterministic word-substitution-and-reversal task (make_synthetic_translation), for the offline demo",
    ),
}


def corpus_info(name: str) -> CorpusInfo:
    """The registry entry of corpus ``name``; an unknown name is an error listing the known ones."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return CORPORA[name]


# ---- models ---------------------------------------------------------------------------------------------------------

# every registered constructor, by the compresslib.models module that defines it
_MODEL_FAMILIES: dict[str, tuple[str, ...]] = {
    "convnet": ("qd_conv_teacher", "qd_conv_student0", "qd_conv_student1", "qd_conv_student2", "demo_conv_teacher",
                "demo_conv_student0", "demo_conv_student1"),
    "graph_layers": ("esnac_net",),
    "lstm_nmt": ("lstm_nmt",),
    "resnet_basic": ("resnet10", "resnet18", "resnet34"),
    "resnet_cifar": ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    "shufflenet": ("shufflenet_g2",),
    "transformer_nmt": ("transformer_nmt",),
    "vdcnn": ("vdcnn9", "vdcnn17", "vdcnn29", "vdcnn49", "demo_vdcnn_student", "demo_vdcnn_teacher"),
    "vgg": ("vgg19",),
    "wide_resnet": ("wide_resnet16_10", "wide_resnet10_4", "wide_resnet10_2"),
}
MODELS: dict[str, str] = {name: f"compresslib.models.{module}" for module, names in _MODEL_FAMILIES.items()
                          for name in names}
# the translation models' constructor arguments a config may give (the vocabulary sizes come from the corpus)
TRANSLATION_MODEL_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "transformer_nmt": ("layers", "d_model", "heads", "ffn", "dropout", "activation", "pad_id", "bos_id", "eos_id"),
    "lstm_nmt": ("layers", "hidden", "embedding", "dropout", "param_init", "pad_id", "bos_id", "eos_id"),
}
# the arguments of every image and text classifier's constructor that the run passes itself, and where from
CLASSIFIER_RUN_ARGUMENTS: dict[str, str] = {"num_classes": "the dataset's class count",
                                            "activation": "the entry's activation, or its experiment's activations"}
# the other constructor arguments a config's model_kwargs may give, by the module defining the classifiers
_CLASSIFIER_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "convnet": ("conv", "pools", "dropout", "linear", "in_chans", "image_size"),
    "graph_layers": ("layers", "inputs"),
    "resnet_basic": ("width",),
    "resnet_cifar": ("in_chans", "init"),
    "shufflenet": (),
    "vdcnn": ("blocks", "widths", "vocab_size", "embedding_dim", "hidden", "kmax", "bias"),
    "vgg": (),
    "wide_resnet": ("dropout", "final_bn_momentum"),
}
CLASSIFIER_MODEL_ARGUMENTS: dict[str, tuple[str, ...]] = {
    name: arguments for module, arguments in _CLASSIFIER_ARGUMENTS.items() for name in _MODEL_FAMILIES[module]}


def is_model(name: str) -> bool:
    return name in MODELS


def list_models() -> list[str]:
    return sorted(MODELS)
