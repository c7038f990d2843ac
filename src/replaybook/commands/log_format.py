"""Global set-up of every command: traces (when OTEL_EXPORTER_OTLP_ENDPOINT is set,
see observability.tracing) and the `--log-format text|json` option (before the command:
`replaybook --log-format json run ...`); `REPLAYBOOK_LOG_FORMAT` sets it too, which
is how a server or worker started by a supervisor gets JSON logs."""

from __future__ import annotations

from typing import Annotated

import typer

from replaybook.errors import UsageError


def log_format_option(
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            envvar="REPLAYBOOK_LOG_FORMAT",
            metavar="text|json",
            help="Log lines as text, or one JSON object per record (with execution_id, "
            "step and attempt).",
        ),
    ] = None,
) -> None:
    """Replaybook: run declarative YAML playbooks, durably."""
    from replaybook.observability.tracing import configure_tracing

    configure_tracing()  # on only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    if log_format is not None:
        from replaybook.observability.logs import set_log_format

        try:
            set_log_format(log_format)
        except ValueError as exc:
            raise UsageError(f"--log-format: {exc}") from None
