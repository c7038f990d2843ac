"""Replaybook: a declarative, durable workflow engine for YAML playbooks."""

__version__ = "0.1.0"
