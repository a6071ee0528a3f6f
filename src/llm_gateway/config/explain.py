"""Turn a pydantic ``ValidationError`` into precise, secret-free ``ConfigProblem`` lines.

Pydantic's locations include the discriminator tag of a union member
(``providers.openai.openai.timeout``); they are rewritten to the path the user wrote.
Unknown keys get a "did you mean" hint, unknown provider types list the valid ones, and
the offending input is echoed only where it cannot be a credential.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from llm_gateway.config.errors import ConfigProblem, Loc, ReferenceErrors
from llm_gateway.config.schema import PROVIDER_TYPES, GatewayConfig
from llm_gateway.config.yamlfile import Document

# A key path containing any of these may hold a credential: never echo its value.
_SECRET_HINTS = ("key", "secret", "token", "password", "credential", "header", "url", "auth")
_VALID_TYPES = ", ".join(PROVIDER_TYPES)


def explain(
    exc: ValidationError,
    documents: Sequence[Document],
    extra: Sequence[ConfigProblem] = (),
) -> list[ConfigProblem]:
    """Problems for every error in ``exc`` (and ``extra``), each attributed to its file.

    Duplicates (the same path and message) are reported once.
    """
    problems: list[ConfigProblem] = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ReferenceErrors):
            prefix = _user_loc(error["loc"])
            problems.extend(ConfigProblem((*prefix, *p.loc), p.message) for p in cause.problems)
            continue
        problems.append(_problem(error))
    seen = {(p.loc, p.message) for p in problems}
    problems.extend(p for p in extra if (p.loc, p.message) not in seen)
    return [_attribute(p, documents) for p in problems]


def _user_loc(loc: Loc) -> Loc:
    """Drop the discriminator tag pydantic inserts after ``providers.<name>``."""
    if len(loc) >= 3 and loc[0] == "providers":
        return (*loc[:2], *loc[3:])
    return tuple(loc)


def _problem(error: ErrorDetails) -> ConfigProblem:
    raw_loc: Loc = tuple(error["loc"])
    loc = _user_loc(raw_loc)
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "union_tag_invalid":
        tag = ctx.get("tag")
        return ConfigProblem(
            (*loc, "type"), f"unknown provider type {tag!r}; valid types: {_VALID_TYPES}"
        )
    if kind == "union_tag_not_found":
        return ConfigProblem((*loc, "type"), f"missing provider type; valid types: {_VALID_TYPES}")
    if kind == "missing":
        return ConfigProblem(loc, "required key is missing")
    if kind == "extra_forbidden":
        return ConfigProblem(loc, _unknown_key(raw_loc))
    message = error["msg"]
    if kind.endswith("_parsing"):
        # "Input should be a valid number, unable to parse string as a number" says the
        # same thing twice; keep the first clause and show the input instead.
        message = message.split(", ", 1)[0]
    if kind.startswith("value_error") and message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if _may_echo(loc, error.get("input")):
        message = f"{message}, got {error['input']!r}"
    return ConfigProblem(loc, message)


def _may_echo(loc: Loc, value: Any) -> bool:
    if not isinstance(value, str | int | float | bool) or value is None:
        return False
    if isinstance(value, str) and len(value) > 80:
        return False
    return not any(
        hint in part.lower() for part in loc if isinstance(part, str) for hint in _SECRET_HINTS
    )


def _unknown_key(raw_loc: Loc) -> str:
    key = str(raw_loc[-1])
    model = _model_at(raw_loc[:-1])
    if model is None:
        return "unknown key"
    valid = list(model.model_fields)
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key; valid keys: {', '.join(valid)}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The config model class found at pydantic location ``loc`` (tags included)."""
    tp: Any = GatewayConfig
    for part in loc:
        tp = _strip(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin is list:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            tp = _member_for_tag(tp, part)
            if tp is None:
                return None
        else:
            return None
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _strip(tp: Any) -> Any:
    """Unwrap ``Annotated`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _member_for_tag(union: Any, tag: str | int) -> Any:
    for member in get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get("type")
            literal = field is not None and get_origin(field.annotation) is Literal
            if literal and field is not None and tag in get_args(field.annotation):
                return member
    return None


def _attribute(problem: ConfigProblem, documents: Sequence[Document]) -> ConfigProblem:
    """Name the file that holds the key (the overlay when it set it) and its line."""
    if not documents:
        return ConfigProblem(problem.loc, problem.message, source="built-in defaults")
    best = documents[0]
    best_depth = -1
    for doc in documents:  # later files win ties: they were merged over earlier ones
        depth = doc.depth_of(problem.loc)
        if depth >= best_depth and (depth > 0 or best_depth < 0):
            best, best_depth = doc, depth
    return ConfigProblem(
        problem.loc, problem.message, source=best.name, line=best.line_of(problem.loc)
    )
