"""Settings dataclasses: built from values plus ``key=value`` overrides, validated, hashed, written back as overrides.

Every runnable thing (a training run, a translation run, an ESNAC search) has a settings dataclass, the single
source of its defaults and allowed values (``compresslib.specs.training``, ``compresslib.specs.translation``,
``compresslib.specs.esnac``). This module is their shared machinery: :func:`build_settings` takes a (nested) dict of
values plus ``key=value`` strings (``lr=0.1``, ``kd.temperature=4``, ``model_kwargs={"dropout": 0.3}``; values
parse as JSON and fall back to a plain string), refuses unknown keys and wrongly typed values with the key named,
and validates the result; :func:`format_overrides` is its inverse, which the workflow uses to pass a job its
settings; :func:`spec_hash` identifies a run's configuration (settings added later count only once set, so the runs
made before them keep their hash). Nothing here needs torch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar

__all__ = ["Settings", "SpecError", "require", "require_choice", "check_kind", "check_runtime", "check_kd",
           "build_settings", "format_overrides", "spec_hash", "PRECISIONS", "COMPILE_SETTINGS"]

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 on the CPU
COMPILE_SETTINGS = ("auto", "on", "off")  # torch.compile of the training steps; auto: on CUDA only


class SpecError(ValueError):
    """A setting's key or value is invalid; the message names the key and what is allowed."""


class Settings:
    """Mixin of the settings dataclasses: ``to_dict`` and ``identity`` (the fields that define a run's result: all
    but the class's ``RUNTIME_FIELDS``, which say where and how it runs and how tables label it; a spec has those of
    them it needs, and :func:`check_runtime` checks them; nor its ``ADDED_FIELDS`` while at their defaults)."""

    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"device", "precision", "channels_last", "compile", "threads",
                                                          "labels"})
    # Settings added after runs were made with the class. At their defaults they are left out of the identity and of
    # a job's arguments, so those runs keep their spec hash, their checkpoints and Snakemake's record of their params.
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def validate(self) -> None:
        """Check values beyond their types; raise SpecError naming the key."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        return {key: value for key, value in self.to_dict().items()
                if key not in self.RUNTIME_FIELDS and not _added_at_default(type(self), key, value)}


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpecError(f"{key}: got {value!r}, expected {allowed}")


def require_choice(key: str, value: Any, choices: Collection[str]) -> None:
    """``value`` must be one of ``choices`` (a tuple of names, or a dict keyed by them)."""
    require(value in choices, key, value, f"one of {', '.join(choices)}")


def check_runtime(spec: Settings) -> None:
    """Check the runtime settings that ``spec`` has: ``precision`` one of PRECISIONS, ``compile`` one of
    COMPILE_SETTINGS, ``threads`` >= 0."""
    if hasattr(spec, "precision"):
        require_choice("precision", spec.precision, PRECISIONS)
    if hasattr(spec, "compile"):
        require_choice("compile", spec.compile, COMPILE_SETTINGS)
    if hasattr(spec, "threads"):
        require(spec.threads >= 0, "threads", spec.threads, "an integer >= 0")


def check_kd(kd: Any) -> None:
    """Check what every group of KD settings (``kd``) has: ``temperature`` > 0 and ``weight`` in [0, 1]."""
    require(kd.temperature > 0, "kd.temperature", kd.temperature, "a number > 0")
    require(0 <= kd.weight <= 1, "kd.weight", kd.weight, "a number in [0, 1]")


def check_kind(spec: Any, groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
    """Check ``spec.kind`` against the groups of settings (``kd``, ``quant``, ...) that each kind needs and allows:
    ``groups[kind] == (needed, allowed)``."""
    require_choice("kind", spec.kind, groups)
    needed, allowed = groups[spec.kind]
    for group in dict.fromkeys(name for pair in groups.values() for name in pair[1]):
        present = getattr(spec, group) is not None
        if group in needed and not present:
            raise SpecError(f"kind: a {spec.kind} run needs {group} settings")
        if present and group not in allowed:
            raise SpecError(f"kind: a {spec.kind} run takes no {group} settings ({group} is set)")


def build_settings(cls: type, values: Mapping[str, Any] | None = None, overrides: Iterable[str] = ()) -> Any:
    """A validated settings dataclass (``cls`` has a ``validate`` method) from values plus ``key=value`` overrides."""
    data = json.loads(json.dumps(dict(values or {})))  # deep copy, JSON-typed
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"override {item!r} is not of the form key=value")
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise SpecError(f"override {item!r}: {parent!r} is not a group of settings")
        target[leaf] = _parse_value(raw)
    settings = _from_dict(cls, data, prefix="")
    settings.validate()
    return settings


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix.rstrip('.') or 'spec'}: expected a mapping of settings, got {data!r}")
    hints = _type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise SpecError(f"unknown setting {prefix + unknown[0]!r}; allowed: {', '.join(prefix + k for k in hints)}")
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    return cls(**kwargs)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved types of ``cls``'s fields, in field order (resolving them is slow; the workflow asks often)."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _coerce(hint: Any, value: Any, key: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise SpecError(f"{key}: may not be null")
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return _from_dict(option, value, prefix=key + ".")
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base in (str, list, dict) and isinstance(value, base):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise SpecError(f"{key}: got {value!r}, expected {names}")


def format_overrides(values: Mapping[str, Any], cls: type, prefix: str = "") -> list[str]:
    """Inverse of :func:`build_settings`'s override parsing: ``{"kd": {"weight": 0.7}}`` -> ``["kd.weight=0.7"]``.

    Nested dataclass groups of ``cls`` become dotted keys; dict-valued settings (``model_kwargs``, ``labels``) stay
    one JSON value. The order is sorted, so equal values always give the same arguments.
    """
    groups = _group_fields(cls)
    items = []
    for key, value in sorted(values.items()):  # canonical: reordering YAML keys must not look like a change
        if not prefix and key in groups and isinstance(value, Mapping):
            items += format_overrides(value, cls, prefix=f"{key}.")
        elif prefix or not _added_at_default(cls, key, value):
            items.append(f"{prefix}{key}={json.dumps(value, sort_keys=True)}")
    return items


@functools.cache
def _group_fields(cls: type) -> frozenset[str]:
    """Settings that are themselves a group of settings (a nested dataclass, e.g. ``kd``)."""
    return frozenset(name for name, hint in _type_hints(cls).items()
                     if any(dataclasses.is_dataclass(option) for option in (hint, *typing.get_args(hint))))


def _added_at_default(cls: type, key: str, value: Any) -> bool:
    """Whether ``key`` is one of ``cls``'s ``ADDED_FIELDS`` and ``value`` its default."""
    return key in cls.ADDED_FIELDS and value == _defaults(cls)[key]


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    return {field.name: field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            for field in dataclasses.fields(cls)}


def spec_hash(spec: Settings) -> str:
    """SHA-256 of the canonical JSON of the spec's identity fields."""
    canonical = json.dumps(spec.identity(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
