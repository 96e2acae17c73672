"""A deterministic toy translation task for the offline demo (the ``synthetic_translation`` corpus)."""

from __future__ import annotations

import torch

__all__ = ["make_synthetic_translation"]

_SRC_LETTERS, _TGT_LETTERS = "abcdefghijklm", "nopqrstuvwxyz"  # disjoint: no word is shared by both sides
_WORD_LETTERS = (3, 7)


def _lexicon(size: int, letters: str, generator: torch.Generator) -> list[str]:
    """``size`` distinct random words of 3 to 7 ``letters``, in order of generation."""
    words: dict[str, None] = {}
    while len(words) < size:
        length = int(torch.randint(_WORD_LETTERS[0], _WORD_LETTERS[1] + 1, (1,), generator=generator))
        word = "".join(letters[i] for i in torch.randint(len(letters), (length,), generator=generator).tolist())
        words.setdefault(word)
    return list(words)


def make_synthetic_translation(
    train_size: int = 20000,
    test_size: int = 1000,
    seed: int = 0,
    vocabulary: int = 200,
    min_length: int = 3,
    max_length: int = 12,
) -> dict[str, list[tuple[str, str]]]:
    """A deterministic toy translation task: ``{"train": pairs, "test": pairs}``.

    The seed fixes two lexicons of ``vocabulary`` distinct made-up lower-case words of 3 to 7 letters, the
    source one over the letters a-m and the target one over n-z; source word ``i`` translates to target word
    ``i`` (a fixed bijection). A source sentence is ``min_length`` to ``max_length`` (uniform) words drawn
    uniformly from the source lexicon; its translation is each word's counterpart, in reverse order. So a
    model must learn a dictionary and a reordering, which a small Transformer or LSTM with attention learns in
    a few epochs. The train and test sentences are drawn independently (a test sentence may also occur in
    training, rarely for lengths >= 3). Uses its own CPU generator: the same arguments give the same pairs.
    """
    if train_size < 1 or test_size < 1:
        raise ValueError("synthetic_translation train_size and test_size must be positive")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"synthetic_translation needs 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if not 2 <= vocabulary <= 100_000:
        raise ValueError(f"synthetic_translation vocabulary must be in [2, 100000], got {vocabulary}")
    generator = torch.Generator().manual_seed(seed)
    source = _lexicon(vocabulary, _SRC_LETTERS, generator)
    target = _lexicon(vocabulary, _TGT_LETTERS, generator)

    def sample(count: int) -> list[tuple[str, str]]:
        lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator).tolist()
        words = torch.randint(vocabulary, (sum(lengths),), generator=generator).tolist()
        pairs, start = [], 0
        for length in lengths:
            sentence = words[start:start + length]
            start += length
            pairs.append((" ".join(source[i] for i in sentence), " ".join(target[i] for i in reversed(sentence))))
        return pairs

    return {"train": sample(train_size), "test": sample(test_size)}
