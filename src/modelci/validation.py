"""pydantic's ValidationError -> one ConfigError naming the file and the dotted key at fault."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from modelci.errors import ConfigError


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at `loc` (the parent of an unknown key), for 'did you mean'."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not None]
        current = next(
            (a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# pydantic names the member of a union that failed inside the location: not a key of the file
_UNION_MEMBERS = {"str", "int", "float", "bool", "NoRegression", "SampleSection"}
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "model_type": "a table",
    "dict_type": "a table",
}
# dict-valued keys whose validators name the entry at fault as "<entry>: <message>"
_KEYED_VALIDATORS = {("gates",), ("train", "metrics")}


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_MEMBERS)))


def explain(exc: ValidationError, model: type[BaseModel], file: Path | str) -> ConfigError:
    """The first validation problem as one ConfigError naming file and dotted key."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    loc = _clean_loc(error["loc"])
    same_place = [e for e in errors if _clean_loc(e["loc"]) == loc]
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if known and not close:
            hint = f"; known keys: {', '.join(known)}"
        message = f"unknown key{hint}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        entry, _, rest = message.partition(": ")
        if loc in _KEYED_VALIDATORS and rest and " " not in entry:
            loc, message = (*loc, entry), rest
        elif not loc and rest and " " not in entry:  # a check across sections names its key
            loc, message = tuple(entry.split(".")), rest
    elif len(same_place) > 1 and all(e["type"] in _TYPE_WORDS for e in same_place):
        words = sorted({_TYPE_WORDS[e["type"]] for e in same_place})
        message = f"expected {', '.join(words[:-1])} or {words[-1]}, got {error['input']!r}"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f", got {error['input']!r}"
    extra = len({_clean_loc(e["loc"]) for e in errors}) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return ConfigError(message, file=file, key=".".join(str(p) for p in loc) or None)
