"""Masking of secret values (spec §10): every form, inside longer strings, in events
and log records; a no-op without secrets."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from replaybook.masking import (
    KNOWN,
    MASK,
    Masker,
    MaskingLogFilter,
    SecretScope,
    env_masker,
    env_secrets,
)
from replaybook.store.base import NewEvent

SECRET = "s3cr3t/Tok+en=42&x"


def test_masks_inside_longer_strings_and_every_encoding() -> None:
    m = Masker([SECRET])
    assert m.mask_text(f"Bearer {SECRET}") == "Bearer ***"
    assert m.mask_text(f"url?token={quote(SECRET, safe='')}&a=1") == "url?token=***&a=1"
    assert m.mask_text(f"q={quote_plus(SECRET)}") == "q=***"
    assert m.mask_text(json.dumps({"t": 'say "' + SECRET + '"'})) == '{"t": "say \\"***\\""}'
    for prefix in ("", "a", "ab", "abc"):
        encoded = base64.b64encode((prefix + SECRET + "!tail").encode()).decode()
        masked = m.mask_text(encoded)
        assert MASK in masked, prefix
        urlsafe = base64.urlsafe_b64encode((prefix + SECRET).encode()).decode()
        assert MASK in m.mask_text(urlsafe), prefix


def test_basic_auth_header_of_a_password_is_masked() -> None:
    m = Masker(["hunter2-password"])
    header = "Basic " + base64.b64encode(b"alice:hunter2-password").decode()
    assert MASK in m.mask_text(header)


def test_mask_walks_json_values_and_keys() -> None:
    m = Masker(["topsecret"])
    value = {"a": ["x topsecret y", 1, None, True], "topsecret": {"b": "topsecret"}}
    assert m.mask(value) == {"a": ["x *** y", 1, None, True], "***": {"b": "***"}}


def test_longest_secret_wins() -> None:
    m = Masker(["abcd", "abcdefgh"])
    assert m.mask_text("abcdefgh abcd") == "*** ***"


def test_no_secrets_is_a_no_op() -> None:
    m = Masker([])
    assert not m
    value = {"a": "b"}
    assert m.mask(value) is value
    events = [NewEvent("x", data={"a": 1})]
    assert m.mask_events(events) == events


def test_short_and_boolean_values_are_not_secrets() -> None:
    m = Masker(["abc", "true", "1"])
    assert not m
    assert m.mask_text("abc true 1") == "abc true 1"


def test_env_secrets_by_name() -> None:
    env = {
        "API_TOKEN": "tok-123456",
        "my_secret_x": "sec-123456",
        "DB_PASSWORD": "pw-123456",
        "SSH_KEY_PATH": "key-123456",
        "PLAIN": "plain-123456",
    }
    assert sorted(env_secrets(env)) == ["key-123456", "pw-123456", "sec-123456", "tok-123456"]
    m = env_masker(env)
    assert m.mask_text("tok-123456 plain-123456") == "*** plain-123456"
    assert env_masker(env) is m  # built once per environment


def test_scope_learns_secrets_and_masks_events() -> None:
    scope = SecretScope(Masker(["env-secret-1"]))
    scope.add({"password": "pw-from-cred", "port": 5432})
    events = [
        NewEvent("step.log", step="a", data={"lines": ["pw-from-cred and env-secret-1"]}),
        NewEvent("step.completed", step="a", data={}),
    ]
    out = scope.mask_events(events)
    assert out[0].data == {"lines": ["*** and ***"]}
    assert out[1] is events[1]
    assert events[0].data == {"lines": ["pw-from-cred and env-secret-1"]}  # not mutated


def test_log_filter_masks_message_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    KNOWN.add_all(["log-secret-9876"])
    logger = logging.getLogger("replaybook.test_masking")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda r: records.append(  # type: ignore[method-assign]
        logging.Formatter("%(message)s").format(r)
    )
    handler.addFilter(MaskingLogFilter())
    logger.addHandler(handler)
    try:
        logger.warning("token %s in args", "log-secret-9876")
        try:
            raise ValueError("bad log-secret-9876")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert "log-secret-9876" not in text
    assert "token *** in args" in text
    assert "ValueError: bad ***" in text
