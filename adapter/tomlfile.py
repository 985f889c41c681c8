"""Reading the project's TOML files (consumer, authorisations, stand-in seeds, suite declarations) through typed
models (pydantic), so that bad input is one clear error naming the file, the key path and the problem:

    config/consumer.toml: client.timeout: must be greater than 0
    authorisations.toml: allow[1].consumer: must be an HSA-id in canonical form (...)

Key paths are written as in TOML: tables joined by dots, entries of an array of tables (`[[allow]]`) counted
from 0 in brackets.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class TomlFileError(ValueError):
    """A TOML file cannot be used; the message names the file, the key path and the problem."""


class Model(BaseModel):
    """Base of the file models: unknown keys are refused, so a typo cannot silently change what happens."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _stripped(value: str) -> str:
    return _text(value).strip()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL (found {value!r})")
    return value


Text = Annotated[str, AfterValidator(_text)]  # a non-empty string, kept as written
Stripped = Annotated[str, AfterValidator(_stripped)]  # a non-empty string, surrounding spaces removed
HttpUrl = Annotated[str, AfterValidator(_http_url)]  # an http or https URL with a host, kept as written


def read(path: Path, error: type[TomlFileError] = TomlFileError) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: {exc}") from None


def validate(model: type[M], data: Any, origin: str | Path, error: type[TomlFileError] = TomlFileError,
             *, at: tuple[str | int, ...] = ()) -> M:
    """`data` as `model`, or `error` naming `origin` (the file), the key path (below `at`) and each problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{origin}: " + "; ".join(f"{key_path(at + tuple(e['loc']))}: {_problem(e)}"
                                              for e in exc.errors())) from None


def fail(error: type[TomlFileError], origin: str | Path, at: tuple[str | int, ...], problem: str) -> TomlFileError:
    """An error for one key, for checks made after validation (e.g. files that must exist)."""
    return error(f"{origin}: {key_path(at)}: {problem}")


def key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a bad key of a table: the key itself names the place
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_PROBLEMS: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda e: "is required",
    "extra_forbidden": lambda e: "unknown key (a typo?)",
    "string_type": lambda e: "must be a string",
    "list_type": lambda e: "must be a list",
    "dict_type": lambda e: "must be a table",
    "model_type": lambda e: "must be a table",
    "model_attributes_type": lambda e: "must be a table",
    "int_type": lambda e: "must be a whole number",
    "int_parsing": lambda e: "must be a whole number",
    "int_from_float": lambda e: "must be a whole number",
    "float_type": lambda e: "must be a number",
    "float_parsing": lambda e: "must be a number",
    "greater_than": lambda e: f"must be greater than {e['ctx']['gt']}",
    "greater_than_equal": lambda e: f"must be at least {e['ctx']['ge']}",
    "less_than_equal": lambda e: f"must be at most {e['ctx']['le']}",
    "literal_error": lambda e: f"must be {e['ctx']['expected']}",
    "too_short": lambda e: "must not be empty" if e["ctx"].get("min_length") == 1 else e["msg"],
}


def _problem(e: dict[str, Any]) -> str:
    if e["type"] == "value_error":
        return str(e["ctx"]["error"])
    if e["type"] == "assertion_error":
        return str(e["ctx"]["error"]).removeprefix("Assertion failed, ")
    known = _PROBLEMS.get(e["type"])
    problem = known(e) if known else e["msg"]
    if e["type"] not in ("missing", "extra_forbidden"):
        problem += f" (found {_shown(e.get('input'))})"
    return problem


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
