"""Secrets by every part: a credential is registered whole and by each part that could be
printed alone, in the forms JSON and URL escaping give it, and scrubbed wherever it appears."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest

from certexpiry.codes import Code
from certexpiry.errors import InvalidMessage, SettingsError
from certexpiry.log import JsonLogger
from certexpiry.redact import (
    MIN_SECRET_LENGTH,
    SECRET_MARK,
    WITHHELD,
    Secrets,
    credential_parts,
    shared_secrets,
)
from certexpiry.settings import (
    SECRET_SETTINGS,
    load_settings,
    register_environment_secrets,
    register_secrets,
)

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
        ("postgresql://u:pw@[::1/x", ["postgresql://u:pw@[::1/x", "u:pw", "pw"]),
        (  # libpq reads an unencoded "?" or "#" as part of the password; urllib stops there
            "postgresql://u:Pa5s?word99@db.example.com/postgres",
            [
                "postgresql://u:Pa5s?word99@db.example.com/postgres",
                "u:Pa5s?word99",
                "Pa5s?word99",
            ],
        ),
        (  # a quoted keyword password with spaces is registered whole, as well as by word
            "host=db password='correct horse battery staple'",
            [
                "host=db password='correct horse battery staple'",
                "correct horse battery staple",
                "correct",
                "horse",
                "battery",
                "staple'",
            ],
        ),
        (
            "host=db password='hunter2xyzzy' user=svc",
            ["host=db password='hunter2xyzzy' user=svc", "hunter2xyzzy"],
        ),
        (
            'host=db PWD="s3cretvalue" passwd=other1234 sslmode',
            [
                'host=db PWD="s3cretvalue" passwd=other1234 sslmode',
                "s3cretvalue",
                "other1234",
                "sslmode",
            ],
        ),
        ("  hunter2xyzzy\n", ["hunter2xyzzy"]),
        ("two words", ["two words", "two", "words"]),
        (JWT, [JWT, JWT.split(".")[1], JWT.split(".")[2]]),
        ("sb_secret_abcdefghijklmnop", ["sb_secret_abcdefghijklmnop", "abcdefghijklmnop"]),
        ("sb_publishable_abc_123456", ["sb_publishable_abc_123456", "abc_123456"]),
        ("sbp_0123456789abcdef", ["sbp_0123456789abcdef", "0123456789abcdef"]),
        ("   ", []),
    ],
)
def test_credential_parts(value: str, parts: list[str]) -> None:
    """Each credential shape gives the whole value and every part that could be printed alone,
    each once, none empty."""
    found = credential_parts(value)
    assert found[:1] == parts[:1]  # the whole credential first
    assert sorted(found) == sorted(parts)


def test_each_part_is_scrubbed_alone() -> None:
    """The password alone, libpq's host view of a password with "@", a non-URL value's word and
    a JWT's payload are scrubbed once the credential is registered."""
    secrets = Secrets()
    secrets.register("postgresql://u:Secret1x@Pa55wd@127.0.0.1:5432/db")
    secrets.register("postgresql://svc:Hunter2Secret@db/x")
    secrets.register("hunter2xyzzy")
    secrets.register(JWT)
    text = (
        "the DB password is Hunter2Secret; failed to resolve host 'Pa55wd@127.0.0.1'; "
        f'missing "=" after "hunter2xyzzy"; payload {JWT.split(".")[1]}'
    )
    scrubbed = secrets.scrub(text)
    for part in ("Hunter2Secret", "Pa55wd", "hunter2xyzzy", JWT.split(".")[1]):
        assert part not in scrubbed
    assert scrubbed == (
        f"the DB password is {SECRET_MARK}; failed to resolve host '{SECRET_MARK}'; "
        f'missing "=" after "{SECRET_MARK}"; payload {SECRET_MARK}'
    )


def test_escaped_forms_are_scrubbed() -> None:
    """A secret as JSON writes it (ASCII-escaped or not) and as URL encoding writes it."""
    secret = 'pä"ss\\wörd/1'
    secrets = Secrets()
    secrets.register(secret)
    forms = [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
    ]
    assert len(set(forms)) == 4
    for form in forms:
        assert secrets.scrub(f"<{form}>") == f"<{SECRET_MARK}>"


def test_short_parts_are_not_registered() -> None:
    """Parts shorter than MIN_SECRET_LENGTH would garble lines: the user "u" is left alone, the
    rest of the credential is not."""
    short = "x" * (MIN_SECRET_LENGTH - 1)
    secrets = Secrets()
    secrets.register(short)
    secrets.register("postgresql://u:Secret1x@db/x")
    assert secrets.scrub(f"{short} u Secret1x") == f"{short} u {SECRET_MARK}"
    assert secrets.scrub("x" * MIN_SECRET_LENGTH) == "x" * MIN_SECRET_LENGTH


def test_a_secret_holding_another_is_scrubbed_whole() -> None:
    """Longest first: a credential that contains another registered one leaves no piece."""
    secrets = Secrets()
    secrets.register("abcdef")
    secrets.register("abcdefghij-more")
    assert secrets.scrub("abcdefghij-more and abcdef") == f"{SECRET_MARK} and {SECRET_MARK}"


def test_registering_again_keeps_what_was_registered() -> None:
    """A second registration adds to the first; nothing registered leaves text as it is."""
    secrets = Secrets()
    assert secrets.scrub("nothing registered") == "nothing registered"
    secrets.register("first-secret-1")
    secrets.register("first-secret-1")
    secrets.register("second-secret-2")
    assert secrets.scrub("first-secret-1 second-secret-2") == f"{SECRET_MARK} {SECRET_MARK}"


def test_a_logger_scrubs_every_registered_form() -> None:
    """Registered secrets never reach a line: in the message (the project's own text), in own
    text in the context, escaped by JSON."""
    secrets = Secrets()
    secret = 'Pa"55wörd-1'
    secrets.register(f"postgresql://svc:{quote(secret, safe='')}@db/x")
    stream = io.StringIO()
    logger = JsonLogger(secrets=secrets, stream=stream)
    assert logger.secrets is secrets
    logger.warning(Code.RUN_FENCED, f"oops {secret}", reason=f"was {secret}")
    line = stream.getvalue()
    entry = json.loads(line)
    assert entry["message"] == f"oops {SECRET_MARK}"
    assert entry["context"]["reason"] == f"was {SECRET_MARK}"
    for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")):
        assert form not in line


def test_register_secrets_registers_each_non_blank_value() -> None:
    """register_secrets: on the given registry, every part; blank values skipped."""
    secrets = Secrets()
    register_secrets(["", "   ", "postgresql://svc:Own5ecretB@db/x"], secrets)
    assert secrets.scrub("Own5ecretB") == SECRET_MARK
    assert shared_secrets().scrub("Own5ecretB") == "Own5ecretB"


def test_the_shared_registry_is_one() -> None:
    """shared_secrets is the process's one registry; register_secrets uses it by default."""
    assert shared_secrets() is shared_secrets()
    register_secrets(["Default5ecretC"])
    assert shared_secrets().scrub("Default5ecretC") == SECRET_MARK


def test_register_environment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials in the environment and the extra values, on the shared registry."""
    assert SECRET_SETTINGS == ("DATABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:Env5ecretD@db/x")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_envkey0123456789")
    register_environment_secrets(["extra-secret-E1"])
    scrubbed = shared_secrets().scrub("Env5ecretD envkey0123456789 extra-secret-E1")
    assert scrubbed == " ".join([SECRET_MARK] * 3)


def test_load_settings_registers_before_validating(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings registers every credential by part on the shared registry, even when
    another setting is invalid; credentials given as arguments too."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:Shared5ecretA@db/x")
    monkeypatch.setenv("BATCH_SIZE", "not a number")
    with pytest.raises(SettingsError):
        load_settings()
    assert shared_secrets().scrub("pw Shared5ecretA") == f"pw {SECRET_MARK}"
    monkeypatch.setenv("BATCH_SIZE", "10")
    monkeypatch.delenv("DATABASE_URL")
    load_settings(
        supabase_url="https://x.supabase.co", supabase_service_role_key="sb_secret_sharedkey99"
    )
    assert shared_secrets().scrub("key sharedkey99") == f"key {SECRET_MARK}"


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("2070443601311540", "2070443601311540"),
        ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        ("Kari Nordmann", WITHHELD),
        ("m-42", WITHHELD),
        ("1" * 33, WITHHELD),
    ],
)
def test_message_ids_are_logged_only_in_their_form(value: str, logged: str) -> None:
    """A message id is anyone's text: an invalid message's line carries it only as Pub/Sub's
    digits or a UUID, else withheld; the reason is the project's own words."""
    stream = io.StringIO()
    logger = JsonLogger(secrets=Secrets(), stream=stream)
    error = InvalidMessage("the field kind is missing", value)
    logger.error(error.code, "The message is not one this function accepts.", **error.log_context())
    entry = json.loads(stream.getvalue())
    assert entry["context"]["reason"] == "the field kind is missing"
    assert entry["context"]["message_id"] == logged
    assert InvalidMessage("r").log_context() == {"reason": "r"}
