"""A deterministic synthetic 5-class text dataset (encoded documents, uint8) for the offline demo.

The seed fixes a filler lexicon of 300 random lower-case words (2 to 8 letters) and, per class, 2
signature words (5 to 7 letters) that never occur in the filler. A document is a run of filler words,
each followed by a space, ", " or ". ", long enough to fill ``length`` characters, where some word slots
are overwritten: 1 to 3 slots with signature words of the document's class and 0 to 2 with signature
words of one other class (a distractor). Planted slots lie among the first ``length // 10`` words, so
they always fall inside the document. Finally every character is replaced, with probability ``noise``,
by a uniformly drawn alphabet symbol, which can break a planted word.

The class is in the characters only: a model must spot which 5-to-7-letter words occur, anywhere in
the text, and count them. A third of the documents hold at least as many distractor as signature
words, so even counting the planted words exactly classifies only about 72 % of the documents right
(at ``noise`` 0.03), while a small character CNN learns far above chance (20 %) in a few epochs
(demo_vdcnn_student: about 50 % test accuracy after 3 epochs on 2000 documents).
Documents are encoded with LIT's alphabet (``compresslib.data.text``). Generation uses its own CPU
generator: the same arguments give the same bytes.
"""

from __future__ import annotations

import torch

from compresslib.data.text import UNKNOWN, VOCAB_SIZE, encode_texts

__all__ = ["make_synthetic_text", "NUM_CLASSES", "MIN_LENGTH"]

NUM_CLASSES = 5
WORDS_PER_CLASS = 2
FILLER_WORDS = 300
SEPARATORS = (" ", " ", " ", " ", ", ", ". ")  # drawn uniformly: mostly spaces
FILLER_LETTERS, SIGNATURE_LETTERS = (2, 8), (5, 7)  # shortest and longest word
MAX_OWN, MAX_DISTRACTORS = 3, 2
_SLOT_CHARS = FILLER_LETTERS[1] + 2  # the most characters one word and its separator take
MIN_LENGTH = (MAX_OWN + MAX_DISTRACTORS) * _SLOT_CHARS  # room for every planted word


def make_synthetic_text(
    train_size: int = 10000,
    test_size: int = 2000,
    seed: int = 0,
    length: int = 256,
    noise: float = 0.03,
) -> dict:
    """Return ``{"train_inputs", "train_labels", "test_inputs", "test_labels", "classes", "files"}``.

    Inputs are uint8 ``(N, length)`` character indices; ``noise`` is the per-character substitution
    probability (see the module docstring).
    """
    if train_size < 1 or test_size < 1:
        raise ValueError("synthetic_text train_size and test_size must be positive")
    if length < MIN_LENGTH:
        raise ValueError(f"synthetic_text length must be at least {MIN_LENGTH} characters (room for "
                         f"{MAX_OWN + MAX_DISTRACTORS} planted words), got {length}")
    if not 0 <= noise < 1:
        raise ValueError(f"synthetic_text noise is a probability in [0, 1), got {noise}")
    generator = torch.Generator().manual_seed(seed)
    words = _lexicon(generator)
    train_inputs, train_labels = _sample(train_size, words, length, noise, generator)
    test_inputs, test_labels = _sample(test_size, words, length, noise, generator)
    signatures = words[FILLER_WORDS:]
    classes = ["+".join(signatures[c * WORDS_PER_CLASS:(c + 1) * WORDS_PER_CLASS]) for c in range(NUM_CLASSES)]
    return {"train_inputs": train_inputs, "train_labels": train_labels,
            "test_inputs": test_inputs, "test_labels": test_labels, "classes": classes, "files": {}}


def _lexicon(generator: torch.Generator) -> list[str]:
    """Filler words, then each class's signature words in class order; all distinct."""
    def distinct(count: int, shortest: int, longest: int, taken: set[str]) -> list[str]:
        chosen: list[str] = []
        while len(chosen) < count:
            sizes = torch.randint(shortest, longest + 1, (count,), generator=generator).tolist()
            letters = torch.randint(0, 26, (count, longest), generator=generator).tolist()
            for size, row in zip(sizes, letters):
                word = "".join(chr(ord("a") + letter) for letter in row[:size])
                if word not in taken and len(chosen) < count:
                    taken.add(word)
                    chosen.append(word)
        return chosen

    taken: set[str] = set()
    filler = distinct(FILLER_WORDS, *FILLER_LETTERS, taken)
    return filler + distinct(NUM_CLASSES * WORDS_PER_CLASS, *SIGNATURE_LETTERS, taken)


def _sample(n: int, words: list[str], length: int, noise: float,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(NUM_CLASSES, (n,), generator=generator)
    own = torch.randint(1, MAX_OWN + 1, (n,), generator=generator)
    distractors = torch.randint(0, MAX_DISTRACTORS + 1, (n,), generator=generator)
    other = (labels + torch.randint(1, NUM_CLASSES, (n,), generator=generator)) % NUM_CLASSES

    # Every word takes at least 3 characters with its separator, so this many words fill the document.
    tokens = torch.randint(FILLER_WORDS, (n, length // 3 + 1), generator=generator)
    separators = torch.randint(len(SEPARATORS), tokens.shape, generator=generator)
    planted = MAX_OWN + MAX_DISTRACTORS
    slots = torch.rand(n, length // _SLOT_CHARS, generator=generator).argsort(dim=1)[:, :planted]
    rank = torch.arange(planted)
    planted_class = torch.where(rank < own[:, None], labels[:, None], other[:, None])
    planted_word = (FILLER_WORDS + planted_class * WORDS_PER_CLASS
                    + torch.randint(WORDS_PER_CLASS, (n, planted), generator=generator))
    used = rank < (own + distractors)[:, None]
    tokens.scatter_(1, slots, torch.where(used, planted_word, tokens.gather(1, slots)))

    texts = ["".join(words[token] + SEPARATORS[separator] for token, separator in zip(row, seps))
             for row, seps in zip(tokens.tolist(), separators.tolist())]
    inputs = torch.from_numpy(encode_texts(texts, length))
    substitute = torch.rand(inputs.shape, generator=generator) < noise
    symbols = torch.randint(UNKNOWN + 1, VOCAB_SIZE, inputs.shape, generator=generator, dtype=torch.uint8)
    return torch.where(substitute, symbols, inputs), labels
