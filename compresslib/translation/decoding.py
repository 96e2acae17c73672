"""Greedy and beam-search decoding for the ``Seq2Seq`` translation models.

Both decoders are batched over sentences and drive the model through its incremental interface
(``encode`` -> ``decode_step`` per target position, ``reorder_state`` for beam search), so the Transformer
uses its key/value cache and the LSTM carries its state. Decoding starts from ``model.bos_id``; the padding and
bos tokens are never generated (their scores are set to -inf). A hypothesis ends when it produces
``model.eos_id``; at most ``max_length`` tokens are generated per sentence (eos included), and hypotheses still
unfinished then are finished as they stand. Outputs are lists of token ids without bos and eos, so at most
``max_length`` long.

Defaults follow OpenNMT-py's 2018 ``translate.py``, which both papers used: beam 5, max length 100, no length
penalty (QD also translated with batch 1 and ``replace_unk``, which is a post-processing step, not done here).
``beam_search`` returns, per sentence, the finished hypothesis with the highest total log-probability, divided
by ``length ** length_penalty`` when ``length_penalty > 0`` (length counts the eos). It follows the usual
"2 x beam candidates" scheme: at each step the 2K best extensions are ranked; those ending in eos among the
top K become finished hypotheses and the best K others stay in the beam. A sentence is done once its best
finished score cannot be beaten by any live hypothesis (log-probabilities only fall as a hypothesis grows, so
a live score ``s`` can at best reach ``s / max_length ** length_penalty``). With ``beam_size=1`` and no length
penalty this is exactly greedy decoding.
"""

from __future__ import annotations

import torch

from compresslib.models.seq2seq import Seq2Seq

__all__ = ["beam_search", "greedy_decode"]

MAX_LENGTH = 100  # OpenNMT-py's translate.py default
BEAM_SIZE = 5


def _log_probs(model: Seq2Seq, logits: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities (float32), with padding and bos never generated."""
    log_probs = logits.float().log_softmax(dim=-1)
    log_probs[:, [model.pad_id, model.bos_id]] = float("-inf")
    return log_probs


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                  max_length: int = MAX_LENGTH) -> list[list[int]]:
    """Pick the most likely token at every step. Returns one token list per sentence (no bos/eos)."""
    batch = src.shape[0]
    state = model.encode(src, src_mask)
    tokens = torch.full((batch,), model.bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_length):
        logits, state = model.decode_step(tokens, state)
        tokens = _log_probs(model, logits).argmax(dim=-1)
        for b, token in enumerate(tokens.tolist()):
            if not finished[b] and token != model.eos_id:
                outputs[b].append(token)
        finished |= tokens.eq(model.eos_id)
        if finished.all():
            break
    return outputs


@torch.no_grad()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_mask: torch.Tensor | None = None, beam_size: int = BEAM_SIZE,
                max_length: int = MAX_LENGTH, length_penalty: float = 0.0) -> list[list[int]]:
    """Beam search (see the module docstring). Returns the best hypothesis per sentence (no bos/eos)."""
    if beam_size < 1 or max_length < 1:
        raise ValueError(f"beam_size and max_length must be positive, got {beam_size} and {max_length}")
    batch, k, device = src.shape[0], beam_size, src.device
    state = model.reorder_state(model.encode(src, src_mask), torch.arange(batch, device=device).repeat_interleave(k))
    hypotheses = torch.full((batch * k, 1), model.bos_id, dtype=torch.long, device=device)  # row b * k + j
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]  # (normalised score, tokens)
    done = [False] * batch
    best_possible_divisor = max_length ** length_penalty if length_penalty > 0 else 1.0

    def normalise(score: float, length: int) -> float:
        return score / length ** length_penalty if length_penalty > 0 else score

    for step in range(max_length):
        logits, state = model.decode_step(hypotheses[:, -1], state)
        log_probs = _log_probs(model, logits)
        vocab = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # sorted, best first
        top_beam = top_index // vocab + torch.arange(batch, device=device).unsqueeze(1) * k  # row in `hypotheses`
        top_token = top_index % vocab
        is_eos = top_token.eq(model.eos_id)

        # eos among the K best candidates: a finished hypothesis
        for b, r in (is_eos[:, :k] & top_scores[:, :k].isfinite()).nonzero().tolist():
            if not done[b]:
                tokens = hypotheses[top_beam[b, r], 1:].tolist()
                finished[b].append((normalise(top_scores[b, r].item(), step + 1), tokens))

        # the K best non-eos candidates stay in the beam (one eos per beam, so at least K of the 2K are not eos)
        keep = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :k]
        scores = top_scores.gather(1, keep)
        rows = top_beam.gather(1, keep).view(-1)
        hypotheses = torch.cat([hypotheses[rows], top_token.gather(1, keep).view(-1, 1)], dim=1)
        state = model.reorder_state(state, rows)

        best_live = (scores.max(dim=1).values / best_possible_divisor).tolist()
        for b in range(batch):
            if finished[b] and max(score for score, _ in finished[b]) >= best_live[b]:
                done[b] = True
        if all(done):
            break
    else:  # max_length reached: the live hypotheses are finished as they stand
        for b in range(batch):
            if done[b]:
                continue
            for j in range(k):
                if scores[b, j].isfinite():
                    finished[b].append((normalise(scores[b, j].item(), max_length), hypotheses[b * k + j, 1:].tolist()))
    return [max(hyps, key=lambda hyp: hyp[0])[1] if hyps else [] for hyps in finished]
