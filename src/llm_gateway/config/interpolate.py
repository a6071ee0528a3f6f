"""``${VAR}`` references in config values.

Syntax: ``${VAR}`` is the variable's value, or ``""`` when unset (an unset key makes a
provider NOT_CONFIGURED rather than crashing the gateway). ``${VAR:-default}`` uses the
default when VAR is unset or empty, and the default may itself contain references.
``$${`` is a literal ``${``. A ``$`` not followed by ``{`` is kept as is.

Substituted values are inserted verbatim, never expanded again, so an environment value
that happens to contain ``${`` cannot pull in other variables.

Interpolation runs on parsed YAML string values (not on the raw text), so a value with
quotes, colons or newlines cannot change the document's structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llm_gateway.config.errors import ConfigProblem, Loc

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class InterpolationError(ValueError):
    """A malformed reference: unterminated ``${`` or an invalid variable name."""


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the reference whose body begins at ``start``, or -1."""
    depth = 1
    i = start
    n = len(text)
    while i < n:
        if text.startswith("$${", i):
            i += 3
        elif text.startswith("${", i):
            depth += 1
            i += 2
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
            i += 1
        else:
            i += 1
    return -1


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Replace every reference in ``text`` using ``env``. Raises ``InterpolationError``."""
    if "$" not in text:  # the common case: no work, no allocation
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        if text.startswith("$${", dollar):
            out.append("${")
            i = dollar + 3
        elif text.startswith("${", dollar):
            end = _closing_brace(text, dollar + 2)
            if end < 0:
                raise InterpolationError(f"unterminated '${{' at position {dollar}")
            out.append(_resolve(text[dollar + 2 : end], env))
            i = end + 1
        else:
            out.append("$")
            i = dollar + 1
    return "".join(out)


def _resolve(body: str, env: Mapping[str, str]) -> str:
    name, has_default, default = body.partition(":-")
    if not _NAME.match(name):
        raise InterpolationError(f"invalid variable name {name!r} in '${{{body}}}'")
    value = env.get(name)
    if has_default and not value:
        return interpolate(default, env)
    return value or ""


def escape(text: str) -> str:
    """The inverse of ``interpolate`` for literal text: ``interpolate(escape(t), env) == t``."""
    return text.replace("${", "$${")


def interpolate_tree(
    data: Any, env: Mapping[str, str], loc: Loc = ()
) -> tuple[Any, list[ConfigProblem]]:
    """Interpolate every string value in parsed YAML; keys are left alone.

    Returns the new tree and the problems found (each with its key path), so one bad
    reference does not hide the others.
    """
    problems: list[ConfigProblem] = []

    def walk(node: Any, here: Loc) -> Any:
        if isinstance(node, str):
            try:
                return interpolate(node, env)
            except InterpolationError as exc:
                problems.append(ConfigProblem(here, str(exc)))
                return node
        if isinstance(node, dict):
            return {k: walk(v, (*here, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*here, i)) for i, v in enumerate(node)]
        return node

    return walk(data, loc), problems
