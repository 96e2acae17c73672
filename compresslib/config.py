"""The experiment configuration's schema (config.yaml): loading it, filling defaults, readable violations.

The workflow validates config.yaml against ``rules/schemas/config.schema.yaml`` (types, ranges, allowed values,
defaults). This module turns schema violations into one message per problem that names the key, the value and what
is allowed. What a schema cannot check (references between entries, registered names, every job's settings) is each
experiment family's part of ``compresslib.experiments.check_config``. It never imports Snakemake or torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["ConfigError", "load_schema", "schema_errors", "with_defaults", "format_problems"]


class ConfigError(ValueError):
    """config.yaml is invalid; the message lists every problem found."""


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every schema violation in ``config`` as ``"<key path>: <problem>; allowed: <what>"``."""
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        messages.append(_describe(error))
    return messages


def with_defaults(config: dict, schema: dict) -> dict:
    """Fill ``config``'s missing keys with the schema's defaults, in place (what Snakemake's ``validate`` does);
    call it on a config without violations (:func:`schema_errors`). Returns ``config``."""
    _DefaultFiller(schema).validate(config)
    return config


def _fill_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator:
    # jsonschema's documented recipe for defaults, as in Snakemake's validate
    if isinstance(instance, dict):
        for key, subschema in properties.items():
            if "default" in subschema:
                instance.setdefault(key, json.loads(json.dumps(subschema["default"])))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_DefaultFiller = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_defaults})


def _key_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    value, schema, keyword = error.instance, error.schema, error.validator
    hint = schema.get("description", "")
    if keyword == "enum":
        return f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        allowed_text = f"allowed keys: {', '.join(allowed)}" if allowed else "names must match " + \
            json.dumps(schema.get("propertyNames", {}).get("pattern", ""))
        return f"{where}: unknown key {', '.join(map(repr, extra)) or ''}; {allowed_text}"
    if keyword == "type":
        return f"{where}: {value!r} is not {_article(error.validator_value)}" + (f" ({hint})" if hint else "")
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        symbol = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[keyword]
        return f"{where}: {value!r} is out of range; allowed: {symbol} {error.validator_value}"
    if keyword == "pattern":
        return f"{where}: {value!r} is not allowed; allowed: {hint or 'strings matching ' + error.validator_value}"
    if keyword in ("required", "minItems", "uniqueItems", "minProperties"):  # jsonschema's message says it all
        return f"{where}: {error.message}"
    return f"{where}: {error.message}" + (f" ({hint})" if hint else "")


def _article(type_name: Any) -> str:
    if isinstance(type_name, list):
        return " or ".join(_article(t) for t in type_name)
    return {"integer": "an integer", "object": "a mapping", "array": "a list", "null": "null"}.get(
        type_name, f"a {type_name}")


def format_problems(problems: list[str]) -> str:
    return "invalid config:\n" + "\n".join(f"  - {problem}" for problem in problems)
