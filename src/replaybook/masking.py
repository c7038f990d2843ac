"""Masking secret values as `***` (spec §10), and how secrets stay usable anyway.

    Masker(secrets)              an immutable set of secret values and one compiled
        .mask(value)             pattern; masks JSON values (recursively) and text,
        .mask_text(text)         also the values' URL-encoded, JSON-escaped and base64
        .mask_events(events)     forms, inside longer strings too
    env_masker(env)              the masker of an environment's secret-named variables
    SecretScope(base)            the secrets one job has seen (its env, the credentials
        .add(value)              it used, the secrets steps it read); masks its output
    SECRET_REF                   key of a `secrets` step's result holding its reference
    KNOWN                        every secret this process has seen (log masking)
    MaskingLogFilter             a logging.Filter that masks records with KNOWN

Which values are secret: every value of an environment variable whose name contains
TOKEN, SECRET, PASSWORD or KEY; the secret fields of every credential a job resolves
(`auth` or a `secrets` step with provider `credential`); every value a `secrets` step
returns. Values shorter than MIN_SECRET_LENGTH are not masked (masking "1" would
rewrite every number in the log).

How a later step can USE a secret while the event log never holds it:

1. A `secrets` step's action returns `{value: <secret>, secret_ref: {provider, name,
   ...}}`. The job's SecretScope learns the value, and the executor masks the job's
   events with that scope, so the log records `{value: "***", secret_ref: {...}}`: a
   reference, never the value.
2. Any worker that later runs a job of the execution (another thread, or another
   process that only sees the event log and the credential store) builds the job's
   context from the folded results; for every result carrying a `secret_ref` it asks
   the provider again (`actions.secrets.resolve_ref`) and puts the real value back in
   the context, adding it to the new job's scope. `{{ word.value }}` therefore renders
   the real secret, and whatever the job writes is masked again.
   The worker names the playbook's secrets steps (JobContext.secret_steps), so the
   jobs of a playbook without any never look at their results.
3. `auth` credentials are resolved the same way, just before the action runs, from the
   credential store; only the credential's name is ever in a playbook or an event. A
   worker without a store (`replaybook worker --server`) gets the ciphertext from the
   server and decrypts it with its own key: no secret value crosses the API.

So the set of secrets to mask is never stored: each job rebuilds it from its
environment and the references in the log, and a resumed or replayed execution reads
secrets afresh (a rotated secret takes effect at once). A value that went through
edge data (`next: [{step: x, data: {t: "{{ word.value }}"}}]`) is recorded masked
and stays `***`; pass secrets by reference (`{{ word.value }}` in the consuming step).

Choke points: the executor masks every event of a job with the job's scope, and
Engine.commit masks every event it writes with the engine's environment secrets (the
events it writes itself: `execution.started` with the rendered workload, cancels...).
The CLI masks what it prints with the environment's secrets, and the log filter with
every secret the process has seen. With no secrets a Masker is a no-op: `mask`
returns its argument after one attribute test.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from replaybook.store.base import NewEvent

MASK = "***"
MIN_SECRET_LENGTH = 4
SECRET_NAME_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
SECRET_REF = "secret_ref"
# Values too common to be secrets even when a variable's name says so (FOO_KEY=true).
_NOT_SECRETS = frozenset({"true", "false", "none", "null", "yes", "no"})
# Base64 cores shorter than this are left alone (they would match by chance).
_MIN_B64_CORE = 6


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_NAME_WORDS)


def is_maskable(value: str) -> bool:
    return len(value) >= MIN_SECRET_LENGTH and value.lower() not in _NOT_SECRETS


def variants(secret: str) -> set[str]:
    """The forms of `secret` that are masked: as is, URL-encoded, JSON-escaped, and
    the parts of its base64 encoding that do not depend on what surrounds it."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    raw = secret.encode("utf-8")
    n = len(raw)
    for pad in range(3):  # the secret may start at any offset modulo 3 of a b64 text
        encoded = base64.b64encode(b"\0" * pad + raw).decode("ascii")
        # Char i covers bits [6i, 6i+6): keep the ones made of the secret's bits only.
        core = encoded[-(-8 * pad // 6) : (8 * (pad + n)) // 6]
        if len(core) >= _MIN_B64_CORE:
            out.add(core)
            out.add(core.replace("+", "-").replace("/", "_"))
    return {v for v in out if v}


class Masker:
    """Replaces a fixed set of secret values by `***`. Immutable and thread-safe."""

    __slots__ = ("_pattern", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: frozenset[str] = frozenset(s for s in secrets if is_maskable(s))
        forms: set[str] = set()
        for s in self.secrets:
            forms |= variants(s)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def with_secrets(self, more: Iterable[str]) -> Masker:
        extra = {s for s in more if is_maskable(s)} - self.secrets
        return Masker(self.secrets | extra) if extra else self

    def mask_text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask(self, value: Any) -> Any:
        """`value` (a JSON value) with every secret masked, in keys too."""
        if self._pattern is None:
            return value
        return self._walk(value, self._pattern)

    def _walk(self, value: Any, pattern: re.Pattern[str]) -> Any:
        if isinstance(value, str):
            return pattern.sub(MASK, value) if pattern.search(value) else value
        if isinstance(value, Mapping):
            return {
                (pattern.sub(MASK, k) if isinstance(k, str) else k): self._walk(v, pattern)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v, pattern) for v in value]
        return value

    def mask_events(self, events: Sequence[NewEvent]) -> list[NewEvent]:
        if self._pattern is None:
            return list(events)
        return [replace(e, data=self._walk(e.data, self._pattern)) if e.data else e for e in events]


EMPTY = Masker()

# id(env) -> (env, its masker); the env is kept so that its id cannot be reused.
_env_cache: dict[int, tuple[Mapping[str, str], Masker]] = {}


def env_secrets(env: Mapping[str, str]) -> list[str]:
    return [v for k, v in env.items() if is_secret_name(k) and isinstance(v, str)]


def env_masker(env: Mapping[str, str]) -> Masker:
    """The masker of `env`'s secret-named variables. Every job asks for it, so the
    last few are kept: asking again with the same mapping object costs a dict lookup
    (an engine's env is a private copy, never changed after it is made)."""
    cached = _env_cache.get(id(env))
    if cached is not None and cached[0] is env:
        return cached[1]
    masker = Masker(env_secrets(env))
    if len(_env_cache) >= 8:
        _env_cache.clear()
    _env_cache[id(env)] = (env, masker)
    KNOWN.add_all(masker.secrets)
    return masker


class SecretScope:
    """The secrets of one job: its environment's, plus the ones it resolves."""

    def __init__(self, base: Masker = EMPTY) -> None:
        self._base = base
        self._extra: set[str] = set()
        self._masker: Masker | None = base
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        """Treat `value` (text, or every text inside a mapping or list) as secret."""
        texts = [t for t in _texts(value) if is_maskable(t)]
        if not texts:
            return
        with self._lock:
            before = len(self._extra)
            self._extra.update(texts)
            if len(self._extra) != before:
                self._masker = None
        KNOWN.add_all(texts)

    @property
    def masker(self) -> Masker:
        m = self._masker
        if m is None:
            with self._lock:
                m = self._masker = self._base.with_secrets(self._extra)
        return m

    def mask(self, value: Any) -> Any:
        return self.masker.mask(value)

    def mask_text(self, text: str) -> str:
        return self.masker.mask_text(text)

    def mask_events(self, events: Sequence[NewEvent]) -> list[NewEvent]:
        return self.masker.mask_events(events)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    return []


class _Known:
    """Every secret this process has seen, newest kept, for masking log records
    (logging is process-wide, so this registry is too). Bounded."""

    def __init__(self, limit: int = 10_000) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._masker = EMPTY
        self._lock = threading.Lock()

    def add_all(self, values: Iterable[str]) -> None:
        with self._lock:
            changed = False
            for v in values:
                if v not in self._values:
                    self._values[v] = None
                    changed = True
            while len(self._values) > self._limit:
                self._values.popitem(last=False)
            if changed:
                self._masker = Masker(self._values)

    @property
    def masker(self) -> Masker:
        return self._masker


KNOWN = _Known()


class MaskingLogFilter(logging.Filter):
    """Masks a record's message (arguments and exception text included) with every
    secret the process has seen."""

    def filter(self, record: logging.LogRecord) -> bool:
        masker = KNOWN.masker
        if not masker:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = masker.mask_text(message)
        record.args = None
        if record.exc_text:
            record.exc_text = masker.mask_text(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add MaskingLogFilter to the handlers of `logger` (default: root), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingLogFilter) for f in handler.filters):
            handler.addFilter(MaskingLogFilter())
