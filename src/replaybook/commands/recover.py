"""Messages of `executions cancel` and `resume` that tell the user where an execution
stands and how to go on (embedded and against a server alike)."""

from __future__ import annotations

import sys

from replaybook.errors import UsageError


def cancel_message(execution_id: str, changed: bool, status: str) -> str:
    """Cancelling a finished execution changes nothing (exit 0), and says so."""
    if changed:
        return f"{execution_id}: cancelled"
    return f"{execution_id}: already {status}, nothing to cancel"


def still_running(execution_id: str, *, server: bool = False) -> UsageError:
    """The error for resuming an execution that is still running, with how to recover
    when what ran it was killed (SIGKILL cannot be handled: its jobs stay leased until
    their leases expire)."""
    cancel = f"`replaybook executions cancel {execution_id}`"
    resume = f"`replaybook executions resume {execution_id}`"
    if server:
        how = (
            "if the worker running it was killed, another worker takes it over once its "
            f"leases expire (30 s by default); to start it over, {cancel} and then {resume}"
        )
    else:
        how = (
            f"if the process that ran it was killed, {cancel} and then {resume}, or start "
            "`replaybook worker` on the same store to take it over once its leases expire "
            "(30 s)"
        )
    return UsageError(f"execution {execution_id} is still running; {how}")


def say_already_completed(execution_id: str) -> None:
    sys.stderr.write(
        f"execution {execution_id} is already completed: nothing to resume "
        "(--from STEP re-runs that step and what follows it)\n"
    )
