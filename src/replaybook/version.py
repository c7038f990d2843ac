"""Versions stamped into durable data."""

# Bumped whenever a change alters how an event history is folded or decided, so old
# histories can be replayed with the logic that wrote them.
LOGIC_VERSION = 1
