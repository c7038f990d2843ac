"""The `secrets` step (spec §6.7) and its providers.

    SecretsAction().run(spec, inputs, ctx) -> {value, secret_ref}
    resolve_ref(ref, env, services) -> str     read a secret again from its reference
    get_provider(name) -> SecretProvider

Fields: `provider` (`env`, `credential`, `file`, or a plugin's name) and `name`:
- env: the environment variable `name` (of the worker running the step).
- credential: the stored credential `name`; `field` picks a field, by default the
  type's secret one (postgres/http_basic password, http_bearer token, http_header
  value, s3 secret, a generic credential's only field).
- file: the text of the file at `path` (or `name`), one trailing newline removed.
- a plugin: any other rendered field is passed to it as an option.

The value is masked everywhere (see replaybook.masking for how later steps still use
it): the result recorded in the log is `{value: "***", secret_ref: {provider, name,
...options}}`, and a worker resolves the reference again for every later job.

Plugins register providers in the `replaybook.secret_providers` entry-point group:

    [project.entry-points."replaybook.secret_providers"]
    vault = "my_package.vault:VaultProvider"    # a class (instantiated once) or an object

A provider has `get(name: str, options: Mapping[str, Any], services: Mapping[str,
Any]) -> str`; `services` holds the runner's services (`credentials`...). Errors it
raises fail the step; their text is masked like everything else.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from replaybook.actions.base import ActionContext
from replaybook.errors import ActionError
from replaybook.masking import SECRET_REF

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "replaybook.secret_providers"
# Fields that are not provider options.
_COMMON = frozenset({"provider", "name", "max_result_bytes"})
_DEFAULT_FIELD = {
    "postgres": "password",
    "http_basic": "password",
    "http_bearer": "token",
    "http_header": "value",
    "s3": "secret",
}


class SecretProvider(Protocol):
    def get(self, name: str, options: Mapping[str, Any], services: Mapping[str, Any]) -> str: ...


class EnvProvider:
    """Reads the worker's environment (the `env` the executor renders with)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = env

    def get(self, name: str, options: Mapping[str, Any], services: Mapping[str, Any]) -> str:
        import os

        env = self.env if self.env is not None else services.get("env") or os.environ
        value = env.get(name)
        if value is None:
            raise ActionError(f"secret: environment variable '{name}' is not set", type="secret")
        return str(value)


class CredentialProvider:
    def get(self, name: str, options: Mapping[str, Any], services: Mapping[str, Any]) -> str:
        from replaybook.credentials import Credentials

        credentials = services.get("credentials")
        if not isinstance(credentials, Credentials):
            raise ActionError(
                f"secret: credential '{name}' cannot be read: no credential store", type="secret"
            )
        cred = credentials.get(name)
        field = options.get("field")
        if field is None:
            field = _DEFAULT_FIELD.get(cred.type)
            if field is None:
                if len(cred.fields) != 1:
                    keys = ", ".join(sorted(cred.fields))
                    raise ActionError(
                        f"secret: credential '{name}' has several fields ({keys}); "
                        "say which with `field`",
                        type="secret",
                    )
                field = next(iter(cred.fields))
        if field not in cred.fields:
            raise ActionError(
                f"secret: credential '{name}' has no field '{field}'", type="secret"
            )
        return str(cred.fields[field])


class FileProvider:
    def get(self, name: str, options: Mapping[str, Any], services: Mapping[str, Any]) -> str:
        path = options.get("path") or name
        try:
            text = Path(str(path)).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            message = f"secret: cannot read file '{path}': {reason}"
            raise ActionError(message, type="secret") from None
        return text[:-1] if text.endswith("\n") else text


_BUILTINS: dict[str, SecretProvider] = {
    "env": EnvProvider(),
    "credential": CredentialProvider(),
    "file": FileProvider(),
}
_lock = threading.Lock()
_plugins: dict[str, EntryPoint] | None = None
_loaded: dict[str, SecretProvider] = {}


def provider_names() -> frozenset[str]:
    return frozenset(_BUILTINS) | frozenset(_plugin_entry_points())


def get_provider(name: str) -> SecretProvider:
    builtin = _BUILTINS.get(name)
    if builtin is not None:
        return builtin
    with _lock:
        loaded = _loaded.get(name)
        if loaded is not None:
            return loaded
    entry_point = _plugin_entry_points().get(name)
    if entry_point is None:
        known = ", ".join(sorted(provider_names()))
        raise ActionError(f"secret: unknown provider {name!r} (known: {known})", type="secret")
    try:
        obj: Any = entry_point.load()
        provider = obj() if isinstance(obj, type) else obj
    except Exception as exc:
        raise ActionError(
            f"secret: provider {name!r}: cannot load {entry_point.value}: {exc}", type="secret"
        ) from exc
    if not callable(getattr(provider, "get", None)):
        raise ActionError(
            f"secret: provider {name!r} ({entry_point.value}) has no get() method", type="secret"
        )
    with _lock:
        _loaded[name] = provider
    result: SecretProvider = provider
    return result


def _plugin_entry_points() -> dict[str, EntryPoint]:
    global _plugins
    with _lock:
        if _plugins is None:
            from importlib.metadata import entry_points

            _plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return _plugins


def _reset_for_tests() -> None:
    global _plugins
    with _lock:
        _plugins = None
        _loaded.clear()


def resolve_ref(ref: Mapping[str, Any], env: Mapping[str, str], services: Mapping[str, Any]) -> str:
    """The secret a reference (`secret_ref` of a secrets step's result) names."""
    provider_name = ref.get("provider")
    name = ref.get("name")
    if not isinstance(provider_name, str) or not provider_name:
        raise ActionError("secrets step needs a `provider` (env, credential, file...)", "secret")
    options = {k: v for k, v in ref.items() if k not in _COMMON}
    if name is None and provider_name == "file" and options.get("path"):
        name = options["path"]
    if not isinstance(name, str) or not name:
        raise ActionError("secrets step needs a `name` (text)", type="secret")
    provider = get_provider(provider_name)
    if provider_name == "env":
        provider = EnvProvider(env)
    value = provider.get(name, options, services)
    if not isinstance(value, str):
        raise ActionError(
            f"secret: provider {provider_name!r} returned {type(value).__name__}, not text",
            type="secret",
        )
    return value


class SecretsAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        ref = {k: v for k, v in spec.items() if k != "max_result_bytes" and v is not None}
        env = ctx.context.get("env")
        value = resolve_ref(ref, env if isinstance(env, Mapping) else {}, ctx.services)
        if ctx.secrets is not None:
            ctx.secrets.add(value)
        return {"value": value, SECRET_REF: ref}
