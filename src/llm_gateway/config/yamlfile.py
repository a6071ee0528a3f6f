"""Reading one YAML config file into data plus the node tree that knows line numbers.

The document is parsed once; the node tree is kept so an error at
``providers.openai.timeout`` can say which line to look at, and so duplicate keys (which
PyYAML otherwise resolves silently to the last one) are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm_gateway.config.errors import ConfigError, ConfigProblem, Loc


@dataclass(frozen=True, slots=True)
class Document:
    """One parsed config file. ``name`` is the path as the user gave it, for messages."""

    name: str
    path: Path | None
    data: dict[str, Any]
    node: yaml.Node | None = None

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the deepest key along ``loc`` that the file contains."""
        node = self.node
        line: int | None = None
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            line = key_node.start_mark.line + 1
        return line

    def depth_of(self, loc: Loc) -> int:
        """How many leading parts of ``loc`` exist in this file's data."""
        here: Any = self.data
        depth = 0
        for part in loc:
            in_dict = isinstance(here, dict) and part in here
            in_list = isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)
            if not (in_dict or in_list):
                break
            here = here[part]
            depth += 1
        return depth


def _child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        item: yaml.Node = node.value[part]
        return item, item
    return None


def _duplicate_keys(node: yaml.Node | None, name: str, loc: Loc = ()) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            key_text = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if key_text in seen:
                problems.append(
                    ConfigProblem(
                        (*loc, key_text),
                        "duplicate key",
                        source=name,
                        line=key.start_mark.line + 1,
                    )
                )
            seen.add(key_text)
            problems.extend(_duplicate_keys(value, name, (*loc, key_text)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, name, (*loc, i)))
    return problems


def parse_yaml(text: str, name: str, path: Path | None = None) -> Document:
    """Parse YAML text into a ``Document``; raises ``ConfigError`` naming line and column.

    Syntax errors are reported without PyYAML's source snippet: the offending line may
    hold an API key.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{message} ({exc.context})"
        raise ConfigError(
            [
                ConfigProblem(
                    (),
                    f"invalid YAML: {message}",
                    source=name,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from None
    except yaml.YAMLError:
        raise ConfigError.single(name, "invalid YAML") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}  # an empty file (or only comments) is a valid, empty config
    if not isinstance(data, dict):
        raise ConfigError.single(
            name, f"the top level must be a mapping of sections, got {_kind(data)}"
        )
    duplicates = _duplicate_keys(node, name)
    if duplicates:
        raise ConfigError(duplicates)
    return Document(name=name, path=path, data=data, node=node)


def read_yaml(path: Path, name: str) -> Document:
    """Read and parse a config file; a missing or unreadable file is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(name, f"config file not found ({path.resolve()})") from None
    except IsADirectoryError:
        raise ConfigError.single(name, "is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError.single(name, "not valid UTF-8 text") from None
    except OSError as exc:
        raise ConfigError.single(name, f"cannot read: {exc.strerror}") from None
    return parse_yaml(text, name, path)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
