"""Config errors that name the file, the key path and the problem, one line each.

Messages never contain secret values: validation errors echo the offending input only for
keys that cannot hold a credential, and YAML syntax errors omit the source snippet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


def format_path(loc: Loc) -> str:
    """``("models", "coder", "routes", 1, "provider")`` → ``models.coder.routes[1].provider``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration.

    ``source`` is the file (as the user named it) or ``environment``; ``loc`` the key path
    inside it; ``line``/``column`` (1-based) where the YAML puts it, when known.
    """

    loc: Loc
    message: str
    source: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def path(self) -> str:
        return format_path(self.loc)

    def __str__(self) -> str:
        head = self.source or "config"
        if not self.loc and self.line is not None:
            # A syntax error has a position but no key path: compiler style.
            return f"{head}:{self.line}:{self.column or 1}: {self.message}"
        where = f"{head}: {self.path}: " if self.loc else f"{head}: "
        tail = f" (line {self.line})" if self.line is not None else ""
        return f"{where}{self.message}{tail}"


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(
        cls, source: str | None, message: str, loc: Loc = (), line: int | None = None
    ) -> ConfigError:
        return cls([ConfigProblem(loc, message, source=source, line=line)])


class ReferenceErrors(ValueError):
    """Cross-field problems found by a model validator, each with its own precise path.

    Pydantic would report a model validator's error at the model's own location; carrying
    the problems lets the loader report ``models.coder.routes[1].provider`` instead.
    """

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))
