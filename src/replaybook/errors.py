"""Replaybook's exception tree.

    ReplaybookError
    ├── PlaybookInvalid        the playbook failed validation (carries every Problem)
    ├── TemplateError          a template failed to compile or render (names step/field)
    │   └── TemplateSyntax     compile-time error, with the template's line
    ├── ActionError            an action attempt failed; `type` classifies it
    │   ├── StepTimeout        the attempt ran out of time (type "timeout")
    │   └── NotJSONError       a result could not become JSON (type "result")
    ├── StoreError             persistence problem
    │   ├── SeqConflict        another writer appended first (optimistic concurrency)
    │   ├── StaleLease         a completion whose lease is gone (fencing)
    │   └── NotFound           execution, job or catalog entry does not exist
    └── UsageError             bad CLI input (payload JSON, missing file...)

Driver errors (sqlite3, psycopg, httpx, duckdb) are mapped to these once, at the
boundary where they are raised; nothing above the action layer sees a driver error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ReplaybookError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: message, 1-based line (0 if unknown, e.g. a file that
    cannot be read) and YAML path."""

    message: str
    line: int = 0
    path: str = ""
    file: str = ""
    severity: str = "error"  # "error" | "warning"

    def as_dict(self) -> dict[str, Any]:
        """`line` is null when unknown (lines count from 1; the key is always there)."""
        return {"message": self.message, "line": self.line or None, "path": self.path}

    def __str__(self) -> str:
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
        else:
            where = f"line {self.line}" if self.line else ""
        if self.path:
            where = f"{where} at {self.path}" if where else f"at {self.path}"
        return f"{where}: {self.message}" if where else self.message


class PlaybookInvalid(ReplaybookError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TemplateError(ReplaybookError):
    """Rendering failed; the message names where (step and field)."""


class TemplateSyntax(TemplateError):
    def __init__(self, message: str, lineno: int = 1) -> None:
        self.lineno = lineno
        super().__init__(message)


class ActionError(ReplaybookError):
    """An attempt failed. `type` goes into the error object of spec §9."""

    def __init__(
        self,
        message: str,
        type: str = "error",
        status_code: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.status_code = status_code
        self.details = details


class StepTimeout(ActionError):
    def __init__(self, seconds: float) -> None:
        shown = f"{seconds:g}"
        super().__init__(f"timed out after {shown} s", type="timeout")


class NotJSONError(ActionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="result")


class StoreError(ReplaybookError):
    pass


class SeqConflict(StoreError):
    pass


class StaleLease(StoreError):
    pass


class NotFound(StoreError):
    pass


class UsageError(ReplaybookError):
    pass
