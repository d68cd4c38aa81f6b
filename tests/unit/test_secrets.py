"""Secrets by every part: each part of a credential is registered, on the one shared
sanitiser, so that a part printed alone is redacted too."""

from __future__ import annotations

import pytest

from certexpiry.errors import (
    NOT_A_MESSAGE_ID,
    DatabaseError,
    InvalidMessage,
    SettingsError,
    body_template,
    loggable_message_id,
)
from certexpiry.log_secrets import secret_parts
from certexpiry.sanitize import SECRET_MARK, Sanitizer, shared_sanitizer
from certexpiry.settings import load_settings, register_secrets

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNlY3JldHM"


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        (
            "postgresql://svc:Hunter2Secret@db:5432/x",
            ["postgresql://svc:Hunter2Secret@db:5432/x", "svc:Hunter2Secret", "Hunter2Secret"],
        ),
        (
            "postgresql://svc:p%40ss%3Aword1@db/x",
            [
                "postgresql://svc:p%40ss%3Aword1@db/x",
                "svc:p%40ss%3Aword1",
                "svc:p@ss:word1",
                "p%40ss%3Aword1",
                "p@ss:word1",
            ],
        ),
        (
            "postgresql://u:Secret1x@Pa55wd@127.0.0.1:5432/db",
            [
                "postgresql://u:Secret1x@Pa55wd@127.0.0.1:5432/db",
                "u:Secret1x@Pa55wd",
                "Secret1x@Pa55wd",
                "u:Secret1x",
                "Pa55wd@127.0.0.1:5432",
                "Pa55wd@127.0.0.1",
                "u",
                "Secret1x",
                "Pa55wd",
            ],
        ),
        ("postgresql://onlyuser@db/x", ["postgresql://onlyuser@db/x", "onlyuser"]),
        ("postgresql://db.host/x", ["postgresql://db.host/x"]),
        ("postgresql://u:pw@[::1/x", ["postgresql://u:pw@[::1/x", "u:pw"]),
        (
            "host=db password='hunter2xyzzy' user=svc",
            ["host=db password='hunter2xyzzy' user=svc", "hunter2xyzzy"],
        ),
        ("  hunter2xyzzy\n", ["hunter2xyzzy"]),
        (JWT, [JWT, JWT.split(".")[1], JWT.split(".")[2]]),
        ("sb_secret_abcdefghijklmnop", ["sb_secret_abcdefghijklmnop", "abcdefghijklmnop"]),
        ("sbp_0123456789abcdef", ["sbp_0123456789abcdef", "0123456789abcdef"]),
    ],
)
def test_secret_parts(value: str, parts: list[str]) -> None:
    """Each credential shape gives the whole value and every part that could be printed alone."""
    assert secret_parts(value) == parts


def test_each_part_is_redacted_alone() -> None:
    """The password alone, libpq's host view of a password with "@" and a non-URL value's
    word are redacted once the credential is registered by part."""
    sanitizer = Sanitizer()
    register_secrets(secret_parts("postgresql://u:Secret1x@Pa55wd@127.0.0.1:5432/db"), sanitizer)
    register_secrets(secret_parts("postgresql://svc:Hunter2Secret@db/x"), sanitizer)
    register_secrets(secret_parts("hunter2xyzzy"), sanitizer)
    text = (
        "ValueError: the DB password is Hunter2Secret; failed to resolve host 'Pa55wd@127.0.0.1'; "
        'missing "=" after "hunter2xyzzy"'
    )
    cleaned = sanitizer.clean(text)
    for part in ("Hunter2Secret", "Pa55wd", "hunter2xyzzy"):
        assert part not in cleaned
    assert cleaned.count(SECRET_MARK) == 3


def test_load_settings_registers_on_the_shared_sanitiser(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings registers every credential by part on the shared sanitiser, even when
    another setting is invalid."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:Shared5ecretA@db/x")
    monkeypatch.setenv("BATCH_SIZE", "not a number")
    with pytest.raises(SettingsError):
        load_settings()
    assert shared_sanitizer().clean("pw Shared5ecretA") == f"pw {SECRET_MARK}"
    monkeypatch.setenv("BATCH_SIZE", "10")
    load_settings(
        supabase_url="https://x.supabase.co", supabase_service_role_key="sb_secret_sharedkey99"
    )
    assert "sharedkey99" not in shared_sanitizer().clean("key sharedkey99")


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        (None, None),
        ("2070443601311540", "2070443601311540"),
        ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        ("Kari Nordmann 01019012345", NOT_A_MESSAGE_ID),
        ("m-42", NOT_A_MESSAGE_ID),
    ],
)
def test_message_ids_are_logged_only_in_pubsubs_shape(
    value: str | None, logged: str | None
) -> None:
    """A message id is anyone's text: only Pub/Sub's (or a local UUID) is logged as is."""
    assert loggable_message_id(value) == logged
    assert InvalidMessage("x", value).log_context().get("message_id") == logged


def test_postgrest_bodies_are_templated_value_by_value() -> None:
    """A JSON body keeps its keys, codes and non-text values; its texts become templates;
    anything else is templated whole."""
    body = (
        '{"code":"23505","message":"dup \\"Kari Nordmann\\" 01019012345",'
        '"details":"Key (email)=(kari@x.no) already exists.","hint":"ask Kari",'
        '"n":12,"ok":true,"none":null,"list":["Kari"]}'
    )
    assert body_template(body) == (
        '{"code":"23505","message":"dup \\"?\\" [REDACTED:national_id]","details":"Key (email)=(?) already exists",'
        '"hint":"[hint]","n":12,"ok":true,"none":null,"list":"?"}'
    )
    assert body_template("<h1>Kari Nordmann 91234567</h1>") == "<h1>[name] [REDACTED:phone]</h1>"
    assert body_template('["Kari"]') == '["?"]'
    assert body_template('{"code":"Kari Nordmann"}') == '{"code":"?"}'


def test_database_errors_keep_names_routines_and_a_template() -> None:
    """A DatabaseError's context has the diagnostics' names, the CONTEXT's routines and the
    message's template; unknown or empty names are dropped; its str() is the template."""
    error = DatabaseError(
        "process_expiry_batch",
        'new row violates check constraint "c" for Kari Nordmann\nDETAIL: Failing row contains (1, Kari).',
        sqlstate="23514",
        names={"constraint_name": "c", "table_name": None, "password": "x"},
        context="PL/pgSQL function public.f() line 3 at RAISE",
    )
    assert error.log_context() == {
        "operation": "process_expiry_batch",
        "sqlstate": "23514",
        "constraint_name": "c",
        "routine": "PL/pgSQL function public.f() line 3 at RAISE",
        "details": 'new row violates check constraint "?" for [name]\nDETAIL: [detail]',
    }
    assert str(error) == error.log_context()["details"]
    bare = DatabaseError("x", "connection lost", sqlstate=None, connection_lost=True)
    assert bare.log_context() == {"operation": "x", "details": "connection lost"}
    assert bare.transient
