"""Model registry (timm's pattern): constructors registered by function name, built by name.

``models/__init__.py`` imports every family module, so importing ``compresslib.models`` fills the
registry. ``model.pt`` files hold a state_dict plus the name and keyword arguments needed to
rebuild the model, never a pickled module.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compresslib.activations import ACTIVATION_TYPES
from compresslib.catalog import MODELS
from compresslib.io import load_versioned, save_torch

__all__ = ["register_model", "create_model", "list_models", "is_model", "save_model", "load_model", "model_file_info",
           "count_parameters", "model_facts"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
MODEL_FILE_FORMAT = 1


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name; a duplicate name, or one that ``compresslib.catalog.MODELS``
    does not list under the constructor's module, is an error."""
    name = fn.__name__
    if MODELS.get(name) != fn.__module__:
        raise ValueError(f"model {name!r} ({fn.__module__}) is not listed in compresslib.catalog.MODELS under its "
                         "module; add it there so that config checks know it")
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__})")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``None`` kwargs are dropped so the model's defaults apply."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    try:
        return _MODELS[name](**kwargs)
    except TypeError as error:  # typically an unknown or missing keyword: say which model it was for
        raise TypeError(f"model {name!r}: {error}") from error


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_facts(model: nn.Module, name: str) -> dict:
    """A record's ``model`` section: registered name, parameters (of them, in activations) and 32-bit bytes."""
    params = count_parameters(model)
    activation_params = sum(p.numel() for m in model.modules() if isinstance(m, ACTIVATION_TYPES)
                            for p in m.parameters(recurse=False))
    return {"name": name, "params": params, "activation_params": activation_params, "bytes_fp32": 4 * params}


def save_model(path: str | Path, model: nn.Module, name: str, kwargs: dict, extra: dict | None = None) -> None:
    """Write a model file: ``{format, name, kwargs, state_dict, **extra}``, atomically, its checksum beside it (the
    jobs that read it check it: ``compresslib.io.verified_sha256``)."""
    payload = {"format": MODEL_FILE_FORMAT, "name": name, "kwargs": dict(kwargs),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    payload.update(extra or {})
    save_torch(path, payload, checksum=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a model file (strict load). Returns ``(model, payload without state_dict)``."""
    payload = _read_model_file(path)
    model = create_model(payload["name"], **payload["kwargs"])
    try:
        model.load_state_dict(payload.pop("state_dict"), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit model {payload['name']!r}: {error}") from error
    return model.to(device), payload


def model_file_info(path: str | Path) -> dict:
    """A model file's payload without its weights (name, kwargs, extras); the weights are mapped, not read."""
    payload = _read_model_file(path, mmap=True)
    del payload["state_dict"]
    return payload


def _read_model_file(path: str | Path, mmap: bool = False) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    return load_versioned(path, MODEL_FILE_FORMAT, "compresslib model file", mmap=mmap)
