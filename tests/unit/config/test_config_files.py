"""Reading files: YAML syntax, missing files, odd shapes; and the shipped example files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, is_configured, load_config
from llm_gateway.config.defaults import PROVIDER_KEY_VARIABLES
from llm_gateway.config.errors import ConfigProblem
from llm_gateway.config.yamlfile import Document, parse_yaml
from llm_gateway.settings import ENV_PREFIX, Settings

WriteFile = Callable[[str, str], Path]
REPO = Path(__file__).resolve().parents[3]
SECRET = "sk-SECRET-in-a-broken-line"


def errors_of(path: str | Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return str(info.value).splitlines()


def test_missing_file_is_named_clearly(tmp_path: Path) -> None:
    assert errors_of("nope.yaml") == [
        f"nope.yaml: config file not found ({(tmp_path / 'nope.yaml').resolve()})"
    ]


def test_missing_file_from_env_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"LLM_GATEWAY_CONFIG": "missing.yaml"})
    assert str(info.value).startswith("missing.yaml: config file not found (")


def test_directory_is_not_a_file(write: WriteFile) -> None:
    write("d/x", "")
    assert errors_of("d") == ["d: is a directory, not a config file"]


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_bytes(b"server: \xff\xfe\n")
    assert errors_of("g.yaml") == ["g.yaml: not valid UTF-8 text"]


def test_unreadable_file(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write("g.yaml", "")

    def deny(*_: object, **__: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)
    assert errors_of("g.yaml") == ["g.yaml: cannot read: Permission denied"]


def test_yaml_syntax_error_has_line_and_column_and_no_snippet(write: WriteFile) -> None:
    write("gateway.yaml", f"providers:\n  o:\n    api_key: {SECRET}: oops\n")
    lines = errors_of("gateway.yaml")
    assert lines == ["gateway.yaml:3:40: invalid YAML: mapping values are not allowed here"]
    assert SECRET not in "\n".join(lines)


def test_yaml_error_with_context(write: WriteFile) -> None:
    write("gateway.yaml", "server: {host: a\nport: 1\n")
    (line,) = errors_of("gateway.yaml")
    assert re.fullmatch(
        r"gateway\.yaml:\d+:\d+: invalid YAML: expected ',' or '\}', but got .* "
        r"\(while parsing a flow mapping\)",
        line,
    ), line


def test_unclosed_quote(write: WriteFile) -> None:
    write("gateway.yaml", 'server:\n  host: "abc\n')
    (line,) = errors_of("gateway.yaml")
    assert line.startswith("gateway.yaml:3:1: invalid YAML: found unexpected end of stream")


def test_multiple_documents_are_rejected(write: WriteFile) -> None:
    write("gateway.yaml", "a: 1\n---\nb: 2\n")
    (line,) = errors_of("gateway.yaml")
    assert line == (
        "gateway.yaml:2:1: invalid YAML: but found another document "
        "(expected a single document in the stream)"
    )


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a string"), ("3\n", "int")]
)
def test_top_level_must_be_a_mapping(write: WriteFile, text: str, kind: str) -> None:
    write("gateway.yaml", text)
    assert errors_of("gateway.yaml") == [
        f"gateway.yaml: the top level must be a mapping of sections, got {kind}"
    ]


def test_duplicate_keys_are_errors(write: WriteFile) -> None:
    write(
        "gateway.yaml",
        "providers:\n  o: {type: openai}\n  o: {type: groq}\n"
        "models:\n  m:\n    routes:\n      - {provider: o, model: a, model: b}\n",
    )
    assert errors_of("gateway.yaml") == [
        "gateway.yaml: providers.o: duplicate key (line 3)",
        "gateway.yaml: models.m.routes[0].model: duplicate key (line 7)",
    ]


def test_document_lookup_helpers() -> None:
    doc = parse_yaml("a:\n  b: [x, {c: 1}]\n", "f.yaml")
    assert doc.line_of(("a", "b", 1, "c")) == 2
    assert doc.line_of(("a", "zz")) == 1
    assert doc.line_of(("a", "b", 9)) == 2
    assert doc.depth_of(("a", "b", 1, "c")) == 4
    assert doc.depth_of(("a", "b", 5)) == 2
    assert Document("n", None, {}).line_of(("a",)) is None


def test_problem_formatting() -> None:
    assert str(ConfigProblem((), "bad")) == "config: bad"
    assert str(ConfigProblem((), "bad", source="f", line=2)) == "f:2:1: bad"
    assert str(ConfigProblem(("a", 0, "b"), "bad", source="f")) == "f: a[0].b: bad"
    assert ConfigError.single("f", "x", ("k",), line=3).problems[0].line == 3


# --- shipped example files -----------------------------------------------------------------


def test_example_yaml_validates_and_covers_every_provider_type() -> None:
    from llm_gateway.config import PROVIDER_TYPES

    config = load_config(REPO / "gateway.example.yaml", env={})
    assert {p.type for p in config.providers.values()} == set(PROVIDER_TYPES)
    assert any(len(m.routes) >= 2 for m in config.models.values())
    # No keys in the environment: keyed providers are NOT_CONFIGURED, not errors.
    assert not is_configured(config.providers["openai"])
    assert is_configured(config.providers["mock"])


def test_example_yaml_with_keys_set() -> None:
    env = {var: "k" for names in PROVIDER_KEY_VARIABLES.values() for var in names}
    config = load_config(REPO / "gateway.example.yaml", env=env)
    assert all(is_configured(p) for p in config.providers.values())


def test_env_example_lists_every_setting_and_key_variable() -> None:
    text = (REPO / ".env.example").read_text()
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    for field in Settings.model_fields:
        assert ENV_PREFIX + field.upper() in names
    for variables in PROVIDER_KEY_VARIABLES.values():
        assert set(variables) <= names
