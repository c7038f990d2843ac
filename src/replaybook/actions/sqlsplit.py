"""Split SQL scripts into statements, for the duckdb and postgres actions (spec §6.3).

    split_sql(text)        -> statements, split on `;` outside literals and comments
    code_parts(statement)  -> the pieces of a statement that are SQL code (no literals,
                              no comments), e.g. to look for placeholders or keywords

The scanner knows single-quoted strings ('' escapes; E'..' with backslash escapes),
double-quoted identifiers ("" escapes), dollar quotes ($$..$$, $tag$..$tag$),
`--` line comments and `/* */` block comments (nested, as in PostgreSQL). An
unterminated literal or comment runs to the end of the text (the database reports it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_SPECIAL = re.compile(r"""['";$/-]""")


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch == "$"


def _scan(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield (kind, start, end) spans covering `text`: kind is "code", "literal",
    "comment" or ";" (a statement separator)."""
    i = 0
    n = len(text)
    code_start = 0
    while True:
        m = _SPECIAL.search(text, i)
        if m is None:
            break
        j = m.start()
        ch = text[j]
        end = -1
        kind = "literal"
        if ch == ";":
            end = j + 1
            kind = ";"
        elif ch == "'":
            backslash = j > 0 and text[j - 1] in "eE" and (j < 2 or not _is_ident_char(text[j - 2]))
            end = _end_of_quote(text, j, "'", backslash)
        elif ch == '"':
            end = _end_of_quote(text, j, '"', False)
        elif ch == "-":
            if text.startswith("--", j):
                nl = text.find("\n", j)
                end = n if nl < 0 else nl
                kind = "comment"
        elif ch == "/":
            if text.startswith("/*", j):
                end = _end_of_block_comment(text, j)
                kind = "comment"
        elif ch == "$" and (j == 0 or not _is_ident_char(text[j - 1])):
            tag = _DOLLAR_TAG.match(text, j)
            if tag is not None:
                close = text.find(tag.group(0), tag.end())
                end = n if close < 0 else close + len(tag.group(0))
        if end < 0:  # not special here after all
            i = j + 1
            continue
        if j > code_start:
            yield "code", code_start, j
        yield kind, j, end
        i = code_start = end
    if n > code_start:
        yield "code", code_start, n


def _end_of_quote(text: str, start: int, quote: str, backslash: bool) -> int:
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:  # doubled quote: an escaped one
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _end_of_block_comment(text: str, start: int) -> int:
    depth = 0
    i = start
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def split_sql(text: str) -> list[str]:
    """Split a script into statements (without their `;`, stripped). Statements that
    hold nothing but whitespace and comments are dropped."""
    statements: list[str] = []
    start = 0
    has_content = False
    for kind, s, e in _scan(text):
        if kind == ";":
            if has_content:
                statements.append(text[start:s].strip())
            start = e
            has_content = False
        elif kind == "literal" or (kind == "code" and text[s:e].strip()):
            has_content = True
    if has_content:
        statements.append(text[start:].strip())
    return statements


def code_parts(statement: str) -> list[str]:
    """The SQL code pieces of `statement`: everything outside literals, quoted
    identifiers and comments."""
    return [statement[s:e] for kind, s, e in _scan(statement) if kind == "code"]
