"""Unit tests for replaybook.actions.sqlsplit (spec §6.3 statement splitting)."""

from __future__ import annotations

import pytest

from replaybook.actions.sqlsplit import code_parts, split_sql


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  ;; ;\n", []),
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s; ok'; SELECT 2", ["SELECT 'it''s; ok'", "SELECT 2"]),
        ('SELECT "we;ird" FROM t; SELECT 2', ['SELECT "we;ird" FROM t', "SELECT 2"]),
        ('SELECT "a""b;c"; SELECT 2', ['SELECT "a""b;c"', "SELECT 2"]),
        ("SELECT E'a\\';b'; SELECT 2", ["SELECT E'a\\';b'", "SELECT 2"]),
        ("SELECT $$a;b$$; SELECT 2", ["SELECT $$a;b$$", "SELECT 2"]),
        (
            "CREATE FUNCTION f() AS $body$ BEGIN; x; $$ inner; END $body$; SELECT 2",
            ["CREATE FUNCTION f() AS $body$ BEGIN; x; $$ inner; END $body$", "SELECT 2"],
        ),
        ("SELECT 1 -- a; comment\n; SELECT 2", ["SELECT 1 -- a; comment", "SELECT 2"]),
        ("SELECT /* a; b */ 1; SELECT 2", ["SELECT /* a; b */ 1", "SELECT 2"]),
        ("SELECT /* outer /* inner; */ still; */ 1; SELECT 2", None),
        ("-- only a comment;\n", []),
        ("SELECT 1; -- trailing comment", ["SELECT 1"]),
        ("/* c1 */ ; /* c2 */", []),
        ("SELECT 1; /* header */ SELECT 2", ["SELECT 1", "/* header */ SELECT 2"]),
        ("SELECT 10 - 2 / 1; SELECT 2", ["SELECT 10 - 2 / 1", "SELECT 2"]),
        ("SELECT $1, $2; SELECT $name", ["SELECT $1, $2", "SELECT $name"]),
        ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
        ("SELECT '東京;'; SELECT 2", ["SELECT '東京;'", "SELECT 2"]),
        ("SELECT ''", ["SELECT ''"]),
    ],
)
def test_split(text: str, expected: list[str] | None) -> None:
    if expected is None:  # nested block comments (PostgreSQL)
        expected = ["SELECT /* outer /* inner; */ still; */ 1", "SELECT 2"]
    assert split_sql(text) == expected


def test_conformance_script() -> None:
    text = """
      -- two statements in one step; the table outlives the step
      CREATE TABLE people (id INTEGER, name VARCHAR);
      INSERT INTO people VALUES (1, 'Ada'), (2, 'Linus; not a separator');
    """
    assert split_sql(text) == [
        "-- two statements in one step; the table outlives the step\n"
        "      CREATE TABLE people (id INTEGER, name VARCHAR)",
        "INSERT INTO people VALUES (1, 'Ada'), (2, 'Linus; not a separator')",
    ]


def test_identifier_with_dollar_is_not_a_dollar_quote() -> None:
    assert split_sql("SELECT a$b$c; SELECT 2") == ["SELECT a$b$c", "SELECT 2"]


def test_code_parts_skip_literals_and_comments() -> None:
    parts = code_parts("SELECT $a, '$b' -- $c\n, /* $d */ $e, \"$f\", $$ $g $$")
    joined = "".join(parts)
    assert "$a" in joined and "$e" in joined
    for hidden in ("$b", "$c", "$d", "$f", "$g"):
        assert hidden not in joined
