"""The HTTP server: REST API for the CLI, remote workers and the UI (`create_app`)."""
