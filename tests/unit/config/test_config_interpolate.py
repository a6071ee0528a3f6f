from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.config.interpolate import (
    InterpolationError,
    escape,
    interpolate,
    interpolate_tree,
)

ENV = {"A": "alpha", "B": "beta", "EMPTY": "", "URL": "http://h:1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${A}", "alpha"),
        ("x-${A}-${B}-y", "x-alpha-beta-y"),
        ("${UNSET}", ""),
        ("key=${UNSET}!", "key=!"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # like the shell: empty counts as unset
        ("${A:-fallback}", "alpha"),
        ("${UNSET:-}", ""),
        ("${UNSET:-${B}}", "beta"),  # nested default
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-pre-${A}-post}", "pre-alpha-post"),
        ("${UNSET:-a:b}", "a:b"),
        ("${URL}/v1", "http://h:1/v1"),
        ("$${A}", "${A}"),  # escape
        ("$${A} and ${A}", "${A} and alpha"),
        ("${UNSET:-$${A}}", "${A}"),
        ("cost: $5", "cost: $5"),  # a lone $ stays
        ("$$", "$$"),
        ("$A", "$A"),  # only the braced form is a reference
        ("trailing $", "trailing $"),
        ("}", "}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, ENV) == expected


def test_values_are_not_expanded_again() -> None:
    assert interpolate("${X}", {"X": "${A}", "A": "no"}) == "${A}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${A", "unterminated '${' at position 0"),
        ("ok ${UNSET:-${B}", "unterminated '${' at position 3"),
        ("${}", "invalid variable name '' in '${}'"),
        ("${1A}", "invalid variable name '1A' in '${1A}'"),
        ("${A B}", "invalid variable name 'A B' in '${A B}'"),
        ("${A-x}", "invalid variable name 'A-x' in '${A-x}'"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, ENV)
    assert str(info.value) == message


def test_tree_interpolates_nested_values_but_not_keys() -> None:
    data = {
        "${A}": {"list": ["${A}", 3, {"deep": "${B}"}], "n": None, "flag": True},
        "s": "${UNSET:-d}",
    }
    out, problems = interpolate_tree(data, ENV)
    assert problems == []
    assert out == {
        "${A}": {"list": ["alpha", 3, {"deep": "beta"}], "n": None, "flag": True},
        "s": "d",
    }


def test_tree_reports_every_problem_with_its_path() -> None:
    data = {"providers": {"x": {"api_key": "${BAD", "models": ["ok", "${1}"]}}}
    out, problems = interpolate_tree(data, ENV)
    assert [(p.path, p.message) for p in problems] == [
        ("providers.x.api_key", "unterminated '${' at position 0"),
        ("providers.x.models[1]", "invalid variable name '1' in '${1}'"),
    ]
    assert out["providers"]["x"]["api_key"] == "${BAD"  # left as is


# --- properties --------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
values = st.text(max_size=30)


@given(st.text().filter(lambda t: "$" not in t))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert interpolate(text, ENV) == text


@given(st.text())
def test_escape_round_trips(text: str) -> None:
    assert interpolate(escape(text), ENV) == text


@given(names, values)
def test_set_variable_is_inserted_verbatim(name: str, value: str) -> None:
    assert interpolate("${" + name + "}", {name: value}) == value


@given(names, values.filter(lambda v: v != ""), st.text(max_size=20))
def test_default_used_only_when_unset_or_empty(name: str, value: str, default: str) -> None:
    safe_default = escape(default).replace("}", "")
    expected_default = interpolate(safe_default, {})
    assert interpolate("${" + name + ":-" + safe_default + "}", {}) == expected_default
    assert interpolate("${" + name + ":-" + safe_default + "}", {name: ""}) == expected_default
    assert interpolate("${" + name + ":-" + safe_default + "}", {name: value}) == value


@given(st.lists(st.tuples(st.text(max_size=10), names), max_size=5), st.dictionaries(names, values))
def test_concatenation(parts: list[tuple[str, str]], env: dict[str, str]) -> None:
    template = "".join(escape(lit) + "${" + name + "}" for lit, name in parts)
    expected = "".join(lit + env.get(name, "") for lit, name in parts)
    # A literal ending in "$" directly before "${" would read as the "$${" escape.
    if all(not escape(lit).endswith("$") for lit, _ in parts):
        assert interpolate(template, env) == expected
