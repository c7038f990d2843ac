"""The typed, immutable playbook model that the loader builds and the engine reads.

Template strings are kept raw here (they render in a worker, at run time); the model
only fixes structure: which steps exist, how they route, and their policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Step types that complete at once with their inputs as result (routers).
ROUTER_TYPES = frozenset({"router", "start", "end"})


@dataclass(frozen=True)
class Arc:
    """One routing arc: `target` is taken when `when` holds (None: always), or, for
    an `else` arc, when no `when` of the same routing held."""

    target: str
    when: str | None = None
    is_else: bool = False
    data: Any = None  # raw template structure merged over the target's inputs
    path: str = ""  # YAML path, for error messages
    # Arcs from one routing item share a group: `when: c, then: [a, b]` is one
    # condition taking two targets; exclusive routing picks groups, not arcs.
    group: int = 0


@dataclass(frozen=True)
class Routing:
    arcs: tuple[Arc, ...] = ()
    inclusive: bool = False

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(a.target for a in self.arcs)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    retry_when: str | None = None
    stop_when: str | None = None

    def delay_before(self, next_attempt: int, factor: float = 1.0) -> float:
        """Seconds to wait before `next_attempt` (2 for the first retry).

        `factor` is the jitter multiplier in [0.5, 1], drawn by the caller so that
        this stays deterministic."""
        n = next_attempt - 1
        base = min(self.max_delay, self.initial_delay * self.backoff_multiplier ** (n - 1))
        return base * factor if self.jitter else base


@dataclass(frozen=True)
class Step:
    name: str
    # Action type after workbook resolution; None for a router (no action).
    type: str | None
    index: int  # position in `workflow`, used for ordering (join merge, DFS)
    line: int = 0
    # Raw inputs: a mapping (args/with/input/data merged) or one template string.
    inputs: Any = None
    # Action fields other than the ones modelled below (url, code, sql, task, ...).
    spec: Mapping[str, Any] = field(default_factory=dict)
    next: Routing = field(default_factory=Routing)
    on_error: Routing = field(default_factory=Routing)
    retry: RetryPolicy | None = None
    timeout: float | None = None
    max_visits: int = 1000
    save: Any = None
    auth: Any = None
    result: Any = None  # `end`'s `result:` mapping template
    pool: str | None = None
    desc: str | None = None
    workbook: str | None = None  # name of the workbook action this step runs

    @property
    def is_router(self) -> bool:
        return self.type is None

    @property
    def max_attempts(self) -> int:
        return self.retry.max_attempts if self.retry else 1


@dataclass(frozen=True)
class Playbook:
    name: str
    path: str
    version: int | None
    description: str | None
    workload: Mapping[str, Any]
    workbook: Mapping[str, Mapping[str, Any]]
    steps: tuple[Step, ...]
    source: str = ""  # the YAML text as given
    file: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {s.name: s for s in self.steps})

    def step(self, name: str) -> Step:
        by_name: dict[str, Step] = object.__getattribute__(self, "_by_name")
        return by_name[name]

    def has_step(self, name: str) -> bool:
        by_name: dict[str, Step] = object.__getattribute__(self, "_by_name")
        return name in by_name
