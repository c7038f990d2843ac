"""Tables of rows for human output on stdout (`executions list`, `schedule list`).

Ids are never cut. Not on a terminal (a pipe, a file: rich would assume 80 columns)
the table takes its natural width, so nothing is cut or folded; on a narrow terminal
the id and status columns keep their full width and the others fold. Cells are plain
text: a `[` in a playbook path is not Rich markup.
"""

from __future__ import annotations

from collections.abc import Sequence


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], keep: Sequence[str] = ()
) -> None:
    """Print `rows` under `headers`; the first column (an id) and those named in `keep`
    are never cut."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [[str(cell) for cell in r] for r in rows]
    table = Table(*headers)
    for i, column in enumerate(table.columns):
        if i == 0 or headers[i] in keep:
            column.no_wrap = True
            column.min_width = max([len(headers[i])] + [len(r[i]) for r in cells])
        else:
            column.overflow = "fold"
    for r in cells:
        table.add_row(*(Text(cell) for cell in r))
    console = Console()
    if not console.is_terminal:
        console = Console(width=100_000)  # natural width: a pipe has no columns to fit
    console.print(table)
