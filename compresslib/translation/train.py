"""Training translation models: teachers, word- and sequence-level distilled students, quantized students.

One job, like ``compresslib.training.loop.train`` for the image and text classifiers, in the shared run lifecycle
(``compresslib.runs``): resolve the spec -> place it -> corpus, teacher, model, quantizer -> resume from the run
directory's checkpoint -> epochs (train, validation perplexity, schedule, history row, checkpoint) -> beam-search
translation of every test split, BLEU, perplexity, inference time and memory -> ``translations/<split>.txt``,
``model.pt`` (plus ``model.packed`` for a quantized run), ``history.csv``, ``record.json`` (written last: its
presence means "finished"); the checkpoint is then deleted. The spec's ``kind`` (``compresslib.specs.translation``)
is the record's ``run_kind`` and fixes which inputs the run reads.

The recipes (reference/seeds.md §1.5, §1.6, §1.8, §2.4, §2.5, §2.7):

* **Batches** hold at most ``batch_tokens`` padded tokens (LMA: 3192 for training, 1024 for evaluation;
  ``compresslib.translation.batching``); the order is a function of ``(seed, epoch)``.
* **Loss**: token-level cross-entropy with padding ignored. With a teacher and ``kd`` (word-level KD, QD's
  ``NMTLossCompute`` and LMA's at T = 1, weight 0.7):
  ``L = (1 - w) NLL + w T² KL(p_teacher || p_student)``, both terms summed over the real (non-padding) target
  tokens and **divided by the number of target tokens** (eos counted) — ``compresslib.losses.nmt_loss``. QD divided the
  sums by the batch's sentence count, and LMA did not mask padding in the KL; both are recorded deviations.
  The teacher runs in eval mode without gradients on the same batch.
* **Sequence-level KD** (Kim & Rush; QD's ``create_distillation_dataset``, LMA's ``-seq_level``): the training
  targets are replaced by a targets file, the teacher's beam-5 translations of the training sources written
  once by ``compresslib.translation.targets.translate_split``; the sources are unchanged. It combines with ``kd``
  when a teacher is given too.
* **Optimisers**: ``noam`` (LMA's Transformer): Adam (0.9, 0.98), eps 1e-9, and per update step ``s`` (from 1)
  ``lr = lr_factor · d^-0.5 · min(s^-0.5, s · warmup^-1.5)`` with ``d`` the model's ``d_model`` (an LSTM's
  ``hidden``); no gradient clipping. ``sgd`` (QD's OpenNMT LSTM): plain SGD at ``lr`` 1.0, gradient norm clipped
  to 5, and OpenNMT-py 0.x's decay: after (1-based) epoch ``e`` has been validated, decaying starts once
  ``e >= start_decay_epoch`` or the validation perplexity is higher than the previous epoch's, and from then on
  **every** later epoch multiplies the rate by ``decay`` (0.5) — the switch is sticky, as in OpenNMT-py's
  ``Optim.updateLearningRate`` (both in ``compresslib.schedules``).
* **Validation**: the ``valid`` split when the corpus has one, else the ``test`` split (the originals had no
  development set and monitored the test set). Its perplexity drives the SGD decay.
* **Quantized distillation** (QD §1.3): ``quant`` (``compresslib.specs.quantization.QuantSpec``, method ``qd`` only)
  trains full-precision shadow weights at their quantized point (``compresslib.quantization.shadow``); at the
  end the weights are quantized for good, packed and measured (``model.packed``). "First and last layer"
  (``quant.quantize_first_last=false``): with ``skip_by="layers"`` the source and target embeddings and the
  output projection (``generator``) stay in full precision; ``skip_by="registration"`` is QD's literal rule,
  parameter tensors 0 and -1 in registration order, which are the source embedding and the generator's bias
  (the target embedding and the generator's weight are then quantized, as in QD's 2-bit WMT student).
  Validation perplexity is measured at the quantized point (``val_ppl``) and, as QD reported it, with the
  shadow weights (``shadow_val_ppl``).
* **Divergence**: a non-finite batch loss, or one above ``divergence_loss`` (default ``100 · ln V_tgt``, a
  hundred times a uniform guess's loss), stops the run with :class:`TrainingDiverged` (checked every
  ``DIVERGENCE_CHECK_EVERY`` batches and at the end of each epoch, so the hot loop syncs rarely) before any
  output is written. QD's 2-bit WMT13 runs exploded like that (issue #10).
* **Evaluation** of the final model (QD saved the final epoch's weights): every split but ``train`` and
  ``valid`` is translated with beam search (``beam_size`` 5; at most ``max_decode_length`` 100 tokens, or
  ``ceil(max_decode_ratio x longest source)`` when that is smaller), detokenised, written to
  ``translations/<split>.txt`` and scored with sacrebleu against the raw references (case-insensitive when the
  corpus was lower-cased, QD's ``multi-bleu -lc``; ``lowercase_bleu`` overrides). Perplexity is measured on every
  split. Translating the ``test`` split is timed (seconds, sentences/s); peak memory is CUDA's
  ``max_memory_allocated`` during that translation on a GPU, while on the CPU only the process's peak resident
  set (``ru_maxrss``, the whole process) and the model's parameter bytes are recorded.

``history.csv`` has one row per epoch: ``lr`` (the rate of the epoch's last update), ``train_loss`` (the loss above,
averaged over the epoch's target tokens), ``val_loss``/``val_ppl`` (plus ``shadow_val_ppl`` for QD), ``steps``,
``train_tokens``, ``train_seconds``, ``eval_seconds``, ``tokens_per_s`` (target tokens per training second).

Determinism: every epoch reseeds torch from ``(seed, epoch)`` (dropout) and draws its batches from the same
pair, the Adam state and the schedule's step counter are checkpointed, so on the CPU a killed run resumed from
its checkpoint ends with bit-identical history and weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import resource
import time
from pathlib import Path

import torch
from torch import nn

from compresslib.data.corpus import load_corpus, split_sentences, tokenizers
from compresslib.data.loader import epoch_seed
from compresslib.io import atomic_open
from compresslib.losses import nmt_loss
from compresslib.models import create_model, load_model, model_facts, save_model
from compresslib.models.seq2seq import Seq2Seq
from compresslib.quantization.pack import PACKED_NAME, pack_and_measure
from compresslib.quantization.shadow import ShadowQuantizer, select_quantized
from compresslib.runs.lifecycle import Run, TrainingDiverged, cpu_state, write_history
from compresslib.runs.progress import Progress
from compresslib.runs.record import HISTORY_NAME, MODEL_NAME
from compresslib.schedules import NoamSchedule, OnmtDecay
from compresslib.settings import spec_hash
from compresslib.translation.batching import collate, sentence_widths, token_batches
from compresslib.translation.evaluate import bleu, eval_batches, perplexity, translate_ids
from compresslib.specs.translation import TranslationSpec
from compresslib.translation.targets import load_targets

__all__ = ["nmt_quantized_names", "build_optimizer", "grad_clip", "train_translation", "HISTORY_COLUMNS"]

log = logging.getLogger(__name__)

TRAIN_SPLIT, VALID_SPLIT, TEST_SPLIT = "train", "valid", "test"
TRANSLATIONS_DIR = "translations"
DIVERGENCE_CHECK_EVERY = 50  # batches between host syncs of the divergence flag
DIVERGENCE_FACTOR = 100.0  # default divergence_loss = DIVERGENCE_FACTOR * ln(target vocabulary)
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_ppl", "steps", "train_tokens", "train_seconds",
                   "eval_seconds", "tokens_per_s")
_MODULES_KEPT = ("src_embedding", "tgt_embedding", "generator")  # NMT's "first and last layers" (skip_by=layers)


# ---- optimisers ---------------------------------------------------------------------------------------------------

def model_dim(model: nn.Module) -> int:
    """The width the Noam schedule scales by: a Transformer's ``d_model``, an LSTM's ``hidden``."""
    for attribute in ("d_model", "hidden"):
        if hasattr(model, attribute):
            return int(getattr(model, attribute))
    raise ValueError(f"{type(model).__name__} has neither d_model nor hidden for the Noam schedule")


def build_optimizer(spec: TranslationSpec, model: nn.Module) -> tuple[torch.optim.Optimizer, NoamSchedule | OnmtDecay]:
    """The optimiser over ``model``'s parameters and its schedule (see the module docstring)."""
    if spec.optimizer == "noam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
        return optimizer, NoamSchedule(spec.lr, model_dim(model), spec.warmup)
    return torch.optim.SGD(model.parameters(), lr=spec.lr), OnmtDecay(spec.lr, spec.decay, spec.start_decay_epoch)


def grad_clip(spec: TranslationSpec) -> float:
    """The gradient-norm clip in effect (0: none)."""
    if spec.max_grad_norm is not None:
        return spec.max_grad_norm
    return 5.0 if spec.optimizer == "sgd" else 0.0


# ---- quantization ------------------------------------------------------------------------------------------------

def nmt_quantized_names(model: nn.Module, quantize_first_last: bool, skip_by: str = "layers") -> list[str]:
    """The parameters QD quantizes in a translation model, in registration order (see the module docstring)."""
    return select_quantized(model, quantize_first_last, skip_by, lambda name: name.split(".")[0] in _MODULES_KEPT)


# ---- the job -------------------------------------------------------------------------------------------------------

def train_translation(spec: TranslationSpec, corpus_path: str | Path, run_dir: str | Path, *,
                      teacher_path: str | Path | None = None, targets_path: str | Path | None = None,
                      command: list[str] | None = None, overwrite: bool = False) -> dict:
    """Run (or resume) one translation training job (see the module docstring); return its record. ``overwrite``
    replaces a finished run in ``run_dir``.

    ``teacher_path`` (a translation model.pt, trained on the same corpus file) with ``spec.kd``: word-level KD.
    ``targets_path`` (``compresslib.translation.targets``: the teacher's translations of the training split):
    sequence-level KD (kind seq_distill). A quantized run (kind quantize) may use either, both or neither.
    """
    run = Run(run_dir, command, identity=spec.identity(),
              outputs=(MODEL_NAME, HISTORY_NAME, PACKED_NAME, TRANSLATIONS_DIR), overwrite=overwrite)
    spec.validate()
    if (teacher_path is None) != (spec.kd is None):
        raise ValueError("word-level KD needs both a teacher model and kd settings; other runs neither "
                         f"(teacher model: {teacher_path}, kd: {spec.kd})")
    if (spec.kind == "seq_distill" and targets_path is None) or (
            targets_path is not None and spec.kind not in ("seq_distill", "quantize")):
        raise ValueError("sequence-level KD (kind seq_distill) trains on a targets file, and only it and quantized "
                         f"distillation (kind quantize) read one (kind: {spec.kind}, targets file: {targets_path})")
    run.check_inputs(corpus=corpus_path, teacher=teacher_path, targets=targets_path)
    with run.owned() as finished:
        if finished is not None:
            return finished
        with run.placed(spec.device, spec.threads, spec.precision, images=False):  # tokens: no memory layout
            return _Job(spec, run, Path(corpus_path), teacher_path, targets_path).train()


class _Job:
    def __init__(self, spec: TranslationSpec, run: Run, corpus_path: Path, teacher_path: str | Path | None,
                 targets_path: str | Path | None) -> None:
        self.spec, self.run, self.corpus_path, self.run_dir = spec, run, corpus_path, run.run_dir
        self.teacher_path = Path(teacher_path) if teacher_path is not None else None
        self.targets_path = Path(targets_path) if targets_path is not None else None
        device = self.device = run.device
        self.autocast = run.precision.autocast

        # ---- corpus --------------------------------------------------------------------------------
        corpus = self.corpus = load_corpus(corpus_path)
        if corpus["name"] != spec.corpus:
            raise ValueError(f"{corpus_path} holds corpus {corpus['name']!r}, but the spec asks for {spec.corpus!r}")
        self.corpus_file = run.input_file(corpus_path, name=corpus["name"], **corpus["provenance"])
        self.corpus_sha256 = self.corpus_file["sha256"]
        self.tokenizer_src, self.tokenizer_tgt = tokenizers(corpus)
        self.vocab = corpus["vocab_sizes"]
        splits = list(corpus["splits"])
        self.valid_split = VALID_SPLIT if VALID_SPLIT in splits else TEST_SPLIT
        if self.valid_split not in splits:
            raise ValueError(f"{corpus_path} has neither a {VALID_SPLIT!r} nor a {TEST_SPLIT!r} split to validate on")
        self.test_splits = sorted((s for s in splits if s not in (TRAIN_SPLIT, VALID_SPLIT)),
                                  key=lambda s: (s != TEST_SPLIT, s))
        self.train_src = split_sentences(corpus, TRAIN_SPLIT, "src")
        self.train_tgt = split_sentences(corpus, TRAIN_SPLIT, "tgt")
        self.targets_info = None
        if self.targets_path is not None:  # sequence-level KD: the teacher's translations are the targets
            self.train_tgt, meta = load_targets(self.targets_path, self.corpus_sha256, len(self.train_src),
                                                self.vocab["tgt"])
            self.targets_info = run.input_file(self.targets_path, **{
                key: meta.get(key) for key in ("model_sha256", "split", "beam_size", "max_length", "max_ratio")})
        self.train_widths = sentence_widths(self.train_src, self.train_tgt)
        self.train_tokens = int(sum(len(t) + 1 for t in self.train_tgt))  # target tokens incl. eos per epoch

        # ---- teacher ---------------------------------------------------------------------------------
        self.teacher, self.teacher_info = None, None
        if self.teacher_path is not None:
            teacher, meta = load_model(self.teacher_path, device)
            if meta.get("corpus_sha256") != self.corpus_sha256:
                raise ValueError(f"teacher {self.teacher_path} was trained on corpus file sha256 "
                                 f"{meta.get('corpus_sha256')}, this run uses {self.corpus_sha256}: they must share "
                                 "the prepared corpus (its vocabularies)")
            self.teacher = teacher.eval().requires_grad_(False)
            self.teacher_info = run.input_file(self.teacher_path, name=meta["name"], spec_hash=meta.get("spec_hash"))

        # ---- model, quantizer --------------------------------------------------------------------------
        self.model_kwargs = {"src_vocab": self.vocab["src"], "tgt_vocab": self.vocab["tgt"], **spec.model_kwargs}
        torch.manual_seed(spec.seed)
        self.model: Seq2Seq = create_model(spec.model, **self.model_kwargs).to(device)
        self.quantizer = None
        if spec.quant is not None:
            names = nmt_quantized_names(self.model, spec.quant.quantize_first_last, spec.quant.skip_by)
            self.quantizer = ShadowQuantizer(self.model, names, spec.quant.bits, spec.quant.bucket_size,
                                             spec.quant.stochastic)
        self.divergence_loss = spec.divergence_loss or DIVERGENCE_FACTOR * math.log(self.vocab["tgt"])
        self.valid_batches = self._eval_batches(self.valid_split)

    def _eval_batches(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        model = self.model
        return eval_batches(split_sentences(self.corpus, split, "src"), split_sentences(self.corpus, split, "tgt"),
                            self.spec.eval_batch_tokens, model.pad_id, model.bos_id, model.eos_id)

    def _quantized(self):
        return self.quantizer.quantized() if self.quantizer is not None else contextlib.nullcontext()

    # ---- training --------------------------------------------------------------------------------------

    def train(self) -> dict:
        spec, model, run_dir = self.spec, self.model, self.run_dir
        optimizer, schedule = build_optimizer(spec, model)
        checkpoint = self.run.resume()
        history: list[dict] = []
        start_epoch = 0
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            schedule.load_state_dict(checkpoint["schedule"])
            history, start_epoch = checkpoint["history"], checkpoint["next_epoch"]
            log.info("resuming %s from its checkpoint at epoch %d", run_dir, start_epoch + 1)
        self.run.begin_session(start_epoch=start_epoch)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        for epoch in range(start_epoch, spec.epochs):
            torch.manual_seed(epoch_seed(spec.seed, epoch))  # dropout: a pure function of (seed, epoch)
            batches = token_batches(self.train_widths, spec.batch_tokens, shuffle=True, seed=spec.seed, epoch=epoch)
            tick = time.perf_counter()
            train_loss, lr = self._train_epoch(epoch, batches, optimizer, schedule)
            train_seconds = time.perf_counter() - tick

            tick = time.perf_counter()
            shadow = {}
            if self.quantizer is not None:  # QD reported the shadow weights' numbers
                shadow = {"shadow_val_ppl": perplexity(model, self.valid_batches, device=self.device,
                                                       autocast=self.autocast)[0]}
            with self._quantized():
                val_ppl, val_loss, _ = perplexity(model, self.valid_batches, device=self.device,
                                                  autocast=self.autocast)
            eval_seconds = time.perf_counter() - tick
            schedule.end_epoch(epoch + 1, val_ppl)
            history.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
                            "val_ppl": val_ppl, "steps": len(batches), "train_tokens": self.train_tokens,
                            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
                            "tokens_per_s": self.train_tokens / train_seconds, **shadow})
            self.run.save_state({
                "next_epoch": epoch + 1, "model": cpu_state(model), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "history": history,
            })
            progress = Progress.measured(epoch + 1, spec.epochs, [row["train_seconds"] + row["eval_seconds"]
                                                                  for row in history[start_epoch:]])
            log.info("%s  lr %.3g  loss %.4f  %s ppl %.3f%s  %.1fs (%.0f tokens/s)", progress.describe(),
                     lr, train_loss, self.valid_split, val_ppl,
                     f" (shadow {shadow['shadow_val_ppl']:.3f})" if shadow else "", train_seconds,
                     history[-1]["tokens_per_s"])
        train_peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        return self._finish(history, train_peak)

    def _train_epoch(self, epoch: int, batches: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                     schedule: NoamSchedule | OnmtDecay) -> tuple[float, float]:
        """One epoch; returns the token-weighted mean training loss and the last learning rate used."""
        spec, model, teacher, device = self.spec, self.model, self.teacher, self.device
        model.train()
        clip = grad_clip(spec)
        kd = dict(temperature=spec.kd.temperature, weight=spec.kd.weight) if spec.kd is not None else {}
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        worst = torch.zeros((), device=device)
        tokens, lr = 0, float("nan")
        for step, index in enumerate(batches, start=1):
            rows = index.tolist()
            src, tgt_in, tgt_out = collate([self.train_src[i] for i in rows], [self.train_tgt[i] for i in rows],
                                           model.pad_id, model.bos_id, model.eos_id)
            batch_tokens = int(tgt_out.ne(model.pad_id).sum())  # on the CPU tensor: no device sync
            src, tgt_in, tgt_out = (t.to(device, non_blocking=True) for t in (src, tgt_in, tgt_out))
            lr = schedule.next_lr()
            for group in optimizer.param_groups:
                group["lr"] = lr
            with self._quantized():  # QD: forward and backward at the quantized point
                with self.autocast:
                    logits = model(src, tgt_in)
                    teacher_logits = None
                    if teacher is not None:
                        with torch.no_grad():
                            teacher_logits = teacher(src, tgt_in)
                    loss = nmt_loss(logits, tgt_out, teacher_logits, pad_id=model.pad_id, **kd)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()  # on the full-precision (shadow) weights
            detached = loss.detach()
            loss_sum += detached.double() * batch_tokens
            tokens += batch_tokens
            bad |= ~torch.isfinite(detached) | (detached > self.divergence_loss)
            worst = torch.maximum(worst, detached.nan_to_num(nan=math.inf))
            if step % DIVERGENCE_CHECK_EVERY == 0 or step == len(batches):
                if bad.item():
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch + 1} (by batch {step} of {len(batches)}): a batch loss "
                        f"was {worst.item():.4g}, non-finite or above divergence_loss {self.divergence_loss:.4g}; "
                        f"no model was written (lower lr, or raise divergence_loss if this is expected)")
        return loss_sum.item() / tokens, lr

    # ---- outputs -----------------------------------------------------------------------------------------

    def _finish(self, history: list[dict], train_peak: int | None) -> dict:
        spec, model, run_dir = self.spec, self.model, self.run_dir
        model_extra = {"corpus": spec.corpus, "corpus_sha256": self.corpus_sha256, "spec": spec.to_dict(),
                       "spec_hash": spec_hash(spec)}
        quantization, codes = None, None
        if self.quantizer is not None:  # the saved, translated and measured model is the quantized one
            codes = self.quantizer.finalize_()
            quantization = {**dataclasses.asdict(spec.quant), "quantized_tensors": list(codes),
                            "full_precision_tensors": [n for n, _ in model.named_parameters() if n not in codes]}

        # ---- evaluation of the final model ------------------------------------------------------------
        lowercase = self.corpus["lowercase"] if spec.lowercase_bleu is None else spec.lowercase_bleu
        results, outputs, timing, memory = {}, {}, {}, {}
        for split in self.test_splits:
            sources = split_sentences(self.corpus, split, "src")
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            tick = time.perf_counter()
            ids = translate_ids(model, sources, beam_size=spec.beam_size, max_length=spec.max_decode_length,
                                batch_tokens=spec.eval_batch_tokens, device=self.device,
                                max_ratio=spec.max_decode_ratio, autocast=self.autocast)
            seconds = time.perf_counter() - tick
            hypotheses = self.tokenizer_tgt.decode(ids)
            score, signature = bleu(hypotheses, self.corpus["splits"][split]["tgt_text"], lowercase=lowercase)
            ppl, nll, tokens = perplexity(model, self._eval_batches(split), device=self.device,
                                          autocast=self.autocast)
            outputs[split] = hypotheses
            results[split] = {"bleu": score, "signature": signature, "ppl": ppl, "nll": nll, "target_tokens": tokens,
                              "sentences": len(sources), "file": f"{TRANSLATIONS_DIR}/{split}.txt",
                              "translate_s": seconds, "sentences_per_s": len(sources) / seconds}
            if split == self.test_splits[0]:
                timing = {"inference_split": split, "inference_s": seconds,
                          "sentences_per_s": len(sources) / seconds}
                memory = self._memory_facts()
            log.info("%s: BLEU %.2f (%s), ppl %.3f, %d sentences in %.1fs", split, score, signature, ppl,
                     len(sources), seconds)
        memory["train_peak_bytes"] = train_peak

        # ---- files: translations, model, history, record (last) -----------------------------------------
        for split, hypotheses in outputs.items():
            with atomic_open(run_dir / TRANSLATIONS_DIR / f"{split}.txt", "w", encoding="utf-8") as handle:
                handle.writelines(line.replace("\n", " ") + "\n" for line in hypotheses)
        if codes is not None:
            quantization |= pack_and_measure(run_dir / PACKED_NAME, model, spec.model, self.model_kwargs, codes,
                                             spec.quant.bits, spec.quant.bucket_size, model_extra)
        save_model(run_dir / MODEL_NAME, model, spec.model, self.model_kwargs, extra=model_extra)
        write_history(run_dir / HISTORY_NAME, history, HISTORY_COLUMNS)
        return self.run.finish(self._record(history, results, timing, memory, quantization, lowercase))

    def _memory_facts(self) -> dict:
        param_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        facts = {"device_type": self.device.type, "param_bytes": param_bytes,
                 # Linux reports ru_maxrss in KiB: the whole process's peak, not the model's
                 "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        if self.device.type == "cuda":
            facts |= {"inference_peak_bytes": torch.cuda.max_memory_allocated(self.device),
                      "note": "inference_peak_bytes: CUDA max_memory_allocated while translating the split"}
        else:
            facts |= {"inference_peak_bytes": None,
                      "note": "on the CPU the inference peak is not measured; process_peak_rss_bytes is the peak "
                              "resident set of the whole process (ru_maxrss)"}
        return facts

    def _record(self, history: list[dict], results: dict, timing: dict, memory: dict, quantization: dict | None,
                lowercase: bool):
        spec, run = self.spec, self.run
        final = history[-1]
        best = min(history, key=lambda row: row["val_ppl"])
        main = results[self.test_splits[0]] if self.test_splits else {}
        train_seconds = sum(row["train_seconds"] for row in history)
        metrics = {
            "final_epoch": final["epoch"], "final_train_loss": final["train_loss"],
            "final_val_ppl": final["val_ppl"], "validation_split": self.valid_split,
            "final_bleu": main.get("bleu"), "bleu_signature": main.get("signature"),
            "final_test_ppl": main.get("ppl"), "bleu_lowercase": lowercase,
            "best_epoch": best["epoch"], "best_val_ppl": best["val_ppl"],
            "bleu": {split: r["bleu"] for split, r in results.items()},
            "ppl": {split: r["ppl"] for split, r in results.items()},
            "epochs_run": len(history), "selection": "final",
            **({"final_shadow_val_ppl": final["shadow_val_ppl"]} if "shadow_val_ppl" in final else {}),
        }
        sections = {
            "run_kind": spec.kind, "metrics": metrics, "translations": results,
            "curve": {key: [row[key] for row in history] for key in ("epoch", "train_loss", "val_ppl", "lr")},
            "model": model_facts(self.model, spec.model),
            "optimizer": {"name": spec.optimizer, "max_grad_norm": grad_clip(spec),
                          "steps": sum(row["steps"] for row in history)},
            "quantization": quantization, "memory": memory,
        }
        timing = run.epoch_timing(history, train_tokens_per_s=sum(r["train_tokens"] for r in history) / train_seconds,
                                  **timing)
        return run.record(kind="translation", labels=spec.labels, seed=spec.seed, spec=spec.to_dict(),
                          spec_hash=spec_hash(spec), sections=sections, timing=timing, data=self.corpus_file,
                          teacher_model=self.teacher_info, targets=self.targets_info)
