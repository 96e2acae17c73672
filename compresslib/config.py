"""The experiment configuration's files and schema (config.yaml): reading them, filling defaults, readable
violations.

Before Snakemake reads a config file, the workflow checks it here (:func:`check_config_files`): YAML keeps the last
of a key given twice without a word, and Snakemake reports a syntax error without saying where it is. The workflow
then validates the config against ``rules/schemas/config.schema.yaml`` (types, ranges, allowed values, defaults).
This module turns every problem into one message that names the key, the value and what is allowed. What a schema
cannot check (references between entries, registered names, every job's settings) is each experiment family's part
of ``compresslib.experiments.check_config``. It never imports Snakemake or torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["ConfigError", "config_file_problems", "check_config_files", "read_config_file", "load_schema",
           "schema_errors", "with_defaults", "format_problems"]

YAML_MERGE_TAG = "tag:yaml.org,2002:merge"  # the ``<<: *anchor`` key


class ConfigError(ValueError):
    """config.yaml is invalid; the message lists every problem found."""


def config_file_problems(path: str | Path) -> list[str]:
    """A config file's YAML syntax error (with its line and column), or every key given twice in one mapping (with
    both lines), one line each."""
    text = Path(path).read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        duplicates = list(_duplicate_keys(root, [], path, set()))  # first: constructing merges the `<<` keys in
        if root is not None:  # else an empty file, which Snakemake refuses as holding no mapping
            loader.construct_document(root)  # what yaml.safe_load does next: a list as a key, an unknown tag fail
    except yaml.YAMLError as error:
        if _is_json(text):  # Snakemake reads a file as JSON first, and JSON indented with tabs is no YAML
            return []
        return [_syntax_problem(path, error)]
    finally:
        loader.dispose()
    return duplicates


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Raise ConfigError listing the problems of every config file (:func:`config_file_problems`)."""
    problems = [problem for path in paths for problem in config_file_problems(path)]
    if problems:
        raise ConfigError(format_problems(problems))


def read_config_file(path: str | Path) -> Any:
    """A config file's contents, once :func:`check_config_files` found no problem in it."""
    check_config_files([path])
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _syntax_problem(path: str | Path, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is None:  # e.g. a character YAML does not allow; its message says where
        return f"{path}: not valid YAML: {' '.join(str(error).split())}"
    context = getattr(error, "context", None)
    return (f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {error.problem}"
            + (f" ({context})" if context else ""))


def _duplicate_keys(node: yaml.Node, path: list[Any], file: str | Path, visited: set[int]) -> Iterator[str]:
    """``"<key path>: given twice ..."`` for every key that one mapping under ``node`` (at ``path``) gives twice."""
    if id(node) in visited:  # an anchored node met again through an alias: reported where it is defined
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == YAML_MERGE_TAG:  # overriding the merged keys is what a merge is for
                yield from _duplicate_keys(value_node, path, file, visited)
                continue
            if not isinstance(key_node, yaml.ScalarNode):  # a list or mapping as a key: refused when constructed
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in lines:
                yield (f"{_key_path([*path, key])}: given twice in {file} (lines {lines[key]} and {line}), and YAML "
                       "keeps only the last; allowed: each key once")
            lines.setdefault(key, line)
            yield from _duplicate_keys(value_node, [*path, key], file, visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, [*path, index], file, visited)


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every schema violation in ``config`` as ``"<key path>: <problem>; allowed: <what>"``."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [message for error in errors for message in _messages(error)]


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


def _messages(error: jsonschema.ValidationError) -> Iterator[str]:
    """One message per problem. A value that may take one of several forms (``oneOf``: null or a mapping, say) is
    judged by the forms of its type, so that the message names the key inside it that is wrong."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        yield _describe(error)
        return
    # the alternatives whose type the value has fail deeper (or on another keyword); the others only on their type
    of_its_type = [sub for sub in error.context if sub.validator != "type" or sub.absolute_path != error.absolute_path]
    if not of_its_type:
        types = [sub.validator_value for sub in error.context]
        hint = error.schema.get("description", "")
        yield f"{_key_path(error.absolute_path)}: {error.instance!r} is not {_article(types)}" + \
            (f" ({hint})" if hint else "")
        return
    for sub in sorted(of_its_type, key=lambda e: list(map(str, e.absolute_path))):
        yield from _messages(sub)


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    value, schema, keyword = error.instance, error.schema, error.validator
    hint = schema.get("description", "")
    if keyword == "enum":
        return f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))  # allowed but not advertised (the `x-` anchor holders)
        keys = map(str, value) if isinstance(value, dict) else []
        extra = sorted(key for key in keys if key not in allowed and not any(re.search(p, key) for p in patterns))
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
