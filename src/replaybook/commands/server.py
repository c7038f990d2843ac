"""`replaybook server`: the HTTP API (uvicorn), optionally with worker slots."""

from __future__ import annotations

import sys

from replaybook.errors import UsageError


def serve(host: str, port: int, db: str | None, workers: int, token: str | None) -> None:
    import uvicorn

    from replaybook.server.app import create_app
    from replaybook.server.auth import TokenRequired, check_bind

    try:
        check_bind(host, token)
    except TokenRequired as e:
        raise UsageError(str(e)) from None
    if workers < 0:
        raise UsageError("--workers must be 0 or more")
    app = create_app(db, token=token, workers=workers)
    sys.stderr.write(f"replaybook server on http://{host}:{port} (API docs at /docs)\n")
    sys.stderr.flush()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Long polls end within this on shutdown; their workers simply lease again.
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run()
