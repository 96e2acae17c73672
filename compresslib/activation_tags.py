"""Activation tags (``relu``, ``prelu``, ``swish``, ``aplu<K>``, ``lma<K>``): their grammar and segment counts.

A tag names an activation family and, for the segmented ones, its segment count K (``lma8``, ``aplu12``); a
bare ``lma`` or ``aplu`` means K = 8, the paper's default. Configs, specs, result paths and records all carry the
canonical tag (:func:`canonical_tag`: lower case, K spelled out), so ``lma`` and ``lma8`` are one run. The layers
themselves are in ``compresslib.activations``; this module needs no torch, so the workflow's start-up and the
config checks can read it.
"""

from __future__ import annotations

import re

__all__ = ["ACTIVATION_FAMILIES", "SEGMENT_RANGE", "DEFAULT_NUM_BINS", "TAG_PATTERN", "parse_activation",
           "canonical_tag", "check_num_bins"]

ACTIVATION_FAMILIES: tuple[str, ...] = ("relu", "prelu", "swish", "aplu", "lma")
SEGMENT_RANGE: dict[str, tuple[int, int]] = {  # allowed segment counts K per segmented family, inclusive
    "aplu": (3, 32),  # K - 2 hinges, so at least one
    "lma": (2, 32),  # half the bins start with slope 0, half with slope 1
}
DEFAULT_NUM_BINS = 8  # the paper's K for both LMA and APLU
# a canonical tag, as a regular expression (the workflow's wildcard constraint): segmented families carry their K
TAG_PATTERN = "|".join([*(f for f in ACTIVATION_FAMILIES if f not in SEGMENT_RANGE),
                        *(rf"{f}[1-9][0-9]*" for f in SEGMENT_RANGE)])

_ALLOWED = "relu, prelu, swish, " + ", ".join(
    f"{family}<K> (K in {SEGMENT_RANGE[family][0]}..{SEGMENT_RANGE[family][1]})" for family in ("lma", "aplu")
)
_TAG = re.compile(r"(?P<family>[a-z]+?)(?P<num_bins>0|[1-9][0-9]*)?")


def check_num_bins(family: str, num_bins: int) -> None:
    """Raise ValueError unless ``num_bins`` is an allowed segment count of the segmented ``family``."""
    lo, hi = SEGMENT_RANGE[family]
    if not lo <= num_bins <= hi:
        raise ValueError(f"{family} needs a segment count K in {lo}..{hi}, got {num_bins}")


def parse_activation(tag: str) -> tuple[str, int | None]:
    """Split an activation tag into (family, K): ``"relu"`` -> ("relu", None), ``"lma8"`` -> ("lma", 8).

    Case-insensitive; a bare ``"lma"`` or ``"aplu"`` gets K = 8. Raises ValueError naming the tag and what is allowed.
    """
    if not isinstance(tag, str):
        raise TypeError(f"activation tag must be a string, got {type(tag).__name__}: {tag!r}")
    match = _TAG.fullmatch(tag.lower())
    family = match["family"] if match else None
    if family not in ACTIVATION_FAMILIES or (family not in SEGMENT_RANGE and match["num_bins"] is not None):
        raise ValueError(f"unknown activation {tag!r}; allowed: {_ALLOWED}")
    if family not in SEGMENT_RANGE:
        return family, None
    num_bins = DEFAULT_NUM_BINS if match["num_bins"] is None else int(match["num_bins"])
    try:
        check_num_bins(family, num_bins)
    except ValueError as error:
        raise ValueError(f"activation {tag!r}: {error}") from None
    return family, num_bins


def canonical_tag(tag: str) -> str:
    """The tag as paths and records spell it: ``"LMA"`` -> ``"lma8"``, ``"relu"`` -> ``"relu"``."""
    family, num_bins = parse_activation(tag)
    return family if num_bins is None else f"{family}{num_bins}"
