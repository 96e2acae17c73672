"""The translation-run spec: every knob of a translation teacher or student run, with its default (no torch).

``kind`` says what the run is, and which inputs it reads: a ``teacher`` or an ``undistilled`` student trains on
the corpus alone, a ``distill`` student distils word-level from a teacher (``kd``), a ``seq_distill`` student
trains on a teacher's translations (a targets file; with ``kd`` it also distils word-level), a ``quantize``
student is trained by quantized distillation (``quant``, method qd; with a teacher, a targets file, both or
neither). The recipes are in ``compresslib.translation.train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compresslib.catalog import CORPORA, TRANSLATION_MODEL_ARGUMENTS
from compresslib.specs.quantization import QuantSpec
from compresslib.settings import Settings, build_settings, check_kd, check_kind, check_runtime, require, require_choice

__all__ = ["NmtKDSpec", "TranslationSpec", "build_translation_spec", "KIND_GROUPS", "TRANSLATION_MODELS", "OPTIMIZERS"]

# per kind (the record's run_kind): the groups of settings it needs, and those it may have
KIND_GROUPS = {"teacher": ((), ()), "undistilled": ((), ()), "distill": (("kd",), ("kd",)),
                "seq_distill": ((), ("kd",)), "quantize": (("quant",), ("quant", "kd"))}
TRANSLATION_MODELS = tuple(TRANSLATION_MODEL_ARGUMENTS)
OPTIMIZERS = ("noam", "sgd")


@dataclass
class NmtKDSpec:
    """Word-level KD (QD/LMA ``NMTLossCompute``): T = 1, weight 0.7 on the KL term."""

    temperature: float = 1.0
    weight: float = 0.7


@dataclass
class TranslationSpec(Settings):
    # ---- what is trained -------------------------------------------------------------------------
    kind: str = "teacher"  # teacher | undistilled | distill (word-level KD) | seq_distill | quantize (QD)
    corpus: str = "onmt_integration"  # name of the prepared corpus (compresslib.catalog.CORPORA)
    model: str = "transformer_nmt"  # transformer_nmt | lstm_nmt
    model_kwargs: dict = field(default_factory=dict)  # constructor arguments beyond the vocabulary sizes
    seed: int = 1  # model init, batch order, dropout
    epochs: int = 15
    # ---- batches (padded tokens; LMA) -----------------------------------------------------------------
    batch_tokens: int = 3192
    eval_batch_tokens: int = 1024
    # ---- optimisation ------------------------------------------------------------------------------
    optimizer: str = "noam"  # noam (Adam + Noam schedule; LMA) or sgd (OpenNMT SGD with decay; QD)
    lr: float = 1.0  # noam: the schedule's factor; sgd: the learning rate
    warmup: int = 8000  # noam warmup steps
    max_grad_norm: float | None = None  # gradient-norm clip; None: 5 for sgd, none for noam (the originals); 0: off
    decay: float = 0.5  # sgd: factor applied each epoch once decaying has started
    start_decay_epoch: int = 8  # sgd: 1-based epoch after which decaying starts (or at a validation ppl rise)
    # ---- distillation and quantization ---------------------------------------------------------------
    kd: NmtKDSpec | None = None  # word-level KD from the teacher (needs one)
    quant: QuantSpec | None = None  # quantized distillation (method qd)
    # ---- evaluation ---------------------------------------------------------------------------------
    beam_size: int = 5
    max_decode_length: int = 100  # absolute cap on generated tokens (OpenNMT's translate.py)
    max_decode_ratio: float | None = None  # also cap at ceil(ratio x longest source of the batch); None: off
    lowercase_bleu: bool | None = None  # None: case-insensitive BLEU exactly when the corpus was lower-cased
    divergence_loss: float | None = None  # batch loss above this stops the run; None: 100 x ln(target vocab)
    # ---- runtime (not part of the run's identity) ----------------------------------------------------
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    threads: int = 0
    labels: dict = field(default_factory=dict)

    def validate(self) -> None:
        require_choice("corpus", self.corpus, CORPORA)
        require_choice("model", self.model, TRANSLATION_MODELS)
        for key in ("src_vocab", "tgt_vocab"):
            require(key not in self.model_kwargs, f"model_kwargs.{key}", self.model_kwargs.get(key),
                    "absent (the vocabulary sizes come from the corpus)")
        for key in ("epochs", "batch_tokens", "eval_batch_tokens", "warmup", "start_decay_epoch", "beam_size",
                    "max_decode_length"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.max_grad_norm is None or self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm,
                "null or a number >= 0")
        require(0 < self.decay <= 1, "decay", self.decay, "a number in (0, 1]")
        require(self.max_decode_ratio is None or self.max_decode_ratio > 0, "max_decode_ratio",
                self.max_decode_ratio, "null or a number > 0")
        require(self.divergence_loss is None or self.divergence_loss > 0, "divergence_loss", self.divergence_loss,
                "null or a number > 0")
        check_runtime(self)
        if self.kd is not None:
            check_kd(self.kd)
        if self.quant is not None:
            self.quant.validate(("qd",))  # differentiable quantization of translation models is not implemented
        check_kind(self, KIND_GROUPS)


def build_translation_spec(values: dict | None = None, overrides: tuple[str, ...] | list[str] = ()
                           ) -> TranslationSpec:
    """A validated TranslationSpec from a (nested) dict of values plus ``key=value`` override strings."""
    return build_settings(TranslationSpec, values, overrides)
