"""`replaybook schema [--output FILE]`: the JSON Schema of playbooks (see
replaybook.schema and docs/schema.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of playbooks, for editors (see docs/schema.md)."""
    from replaybook.schema import schema_json

    text = schema_json()
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as e:  # a path the user named that cannot be written: bad input
            from replaybook.errors import UsageError

            raise UsageError(f"--output: cannot write {output}: {e.strerror or e}") from e
