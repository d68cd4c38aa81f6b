"""Redaction of secrets and personal data: each rule, what is left alone, and properties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certexpiry import sanitize
from certexpiry.sanitize import MIN_SECRET_LENGTH, SECRET_MARK, Sanitizer
from tests.strategies import (
    leaked,
    registered_secrets,
    texts_with_sensitive_parts,
)

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.fixture
def clean() -> Sanitizer:
    return Sanitizer()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {JWT} done", "token [REDACTED:jwt] done"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[REDACTED:jwt]"),
        ("two parts eyJhbGciOi.eyJzdWIiOiIx", "two parts [REDACTED:jwt]"),
        ("sent Bearer abc.def-ghi~1 ok", "sent Bearer [REDACTED:bearer] ok"),
        ("BEARER XYZ123", "BEARER [REDACTED:bearer]"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED:credential]"),
        ("Authorization: Basic dXNlcjpw", "Authorization: Basic [REDACTED:credential]"),
        ("apikey: abc123", "apikey: [REDACTED:credential]"),
        ("x-api-key: abc123", "x-api-key: [REDACTED:credential]"),
        ("url /rpc?apikey=abc123&x=1", "url /rpc?apikey=[REDACTED:credential]&x=1"),
        ("api_key=abc", "api_key=[REDACTED:credential]"),
        ("key=abc", "key=[REDACTED:credential]"),
        ("SUPABASE_SERVICE_ROLE_KEY=abc", "SUPABASE_SERVICE_ROLE_KEY=[REDACTED:credential]"),
        ("secret_key = abc", "secret_key = [REDACTED:credential]"),
        ("client_secret=abc", "client_secret=[REDACTED:credential]"),
        ("access_token=abc", "access_token=[REDACTED:credential]"),
        ("PGPASSWORD=abc", "PGPASSWORD=[REDACTED:credential]"),
        ("passwd: abc", "passwd: [REDACTED:credential]"),
        ("pwd=abc", "pwd=[REDACTED:credential]"),
        ("auth=abc", "auth=[REDACTED:credential]"),
        ("credentials: abc", "credentials: [REDACTED:credential]"),
        ("token => abc, next", "token => [REDACTED:credential], next"),
        ('{"apikey": "abc", "ok": 1}', '{"apikey": "[REDACTED:credential]", "ok": 1}'),
        ('{"password":"p\\"w"}', '{"password":"[REDACTED:credential]"}'),
        ("{'apikey': 'abc', 'n': 1}", "{'apikey': '[REDACTED:credential]', 'n': 1}"),
        ('\\"apikey\\": \\"abc\\"', '\\"apikey\\": \\"[REDACTED:credential]\\"'),
        ("libpq password='my secret' host=x", "libpq password='[REDACTED:credential]' host=x"),
        (
            "host=db user=postgres password=s3cret dbname=x",
            "host=db user=postgres password=[REDACTED:credential] dbname=x",
        ),
        ("token=a:password=b c", "token=[REDACTED:credential] c"),
        (
            "dsn postgresql://postgres:pa55@db.x.supabase.co:5432/postgres?sslmode=require x",
            "dsn [REDACTED:connection_string] x",
        ),
        ("dsn postgres://db.host/postgres", "dsn [REDACTED:connection_string]"),
        ("DSN POSTGRES://u:p@h/d", "DSN [REDACTED:connection_string]"),
        ("redis://:pw@cache:6379/0", "[REDACTED:connection_string]"),
        ("see https://user:pw@example.com/p", "see https://[REDACTED:credentials]@example.com/p"),
        (
            "keys sb_secret_abcdefghijkl sbp_0123456789abcdef",
            "keys [REDACTED:api_key] [REDACTED:api_key]",
        ),
        ("sb_publishable_abcdefghijkl", "[REDACTED:api_key]"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstu", "[REDACTED:api_key]"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\nafter",
            "[REDACTED:private_key]\nafter",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEvQ", "[REDACTED:private_key]"),
        (
            "DETAIL:  Failing row contains (1, Ola Nordmann, null).",
            "DETAIL:  Failing row contains ([REDACTED:row]).",
        ),
        (
            "DETAIL:  Key (email)=(ola@example.no) already exists.",
            "DETAIL:  Key (email)=([REDACTED:row]) already exists.",
        ),
        (
            'mentor row rejected: (3f1c0000-0000-0000-0000-000000000001,"Ola Testesen 3",t,,'
            '"2026-11-28 18:00:00+00")',
            "mentor row rejected: ([REDACTED:row])",
        ),
        ('("Nordmann, Ola ""Junior""",x,y) rest', "([REDACTED:row]) rest"),
        ("mail ola.nordmann@example.no, ok", "mail [REDACTED:email], ok"),
        ("<o'brien@x.co.uk>", "<[REDACTED:email]>"),
        ("'quoted@x.no'", "'[REDACTED:email]'"),
        ("end .dot@x.no", "end .[REDACTED:email]"),
        ("Øyvind.Ås@eksempel.no", "[REDACTED:email]"),
        ("fnr 01019012345.", "fnr [REDACTED:national_id]."),
        (
            "fnr 010190 12345 and 010190-12345",
            "fnr [REDACTED:national_id] and [REDACTED:national_id]",
        ),
        ("(12345678901)", "([REDACTED:national_id])"),
        ("tlf +47 912 34 567", "tlf [REDACTED:phone]"),
        ("tlf +4791234567", "tlf [REDACTED:phone]"),
        (
            "tlf 91234567 / 912 34 567 / 91 23 45 67",
            "tlf [REDACTED:phone] / [REDACTED:phone] / [REDACTED:phone]",
        ),
        ("uk +44 20 7946 0958", "uk [REDACTED:phone]"),
        ("us +1 (555) 123-4567", "us [REDACTED:phone]"),
        ("İstanbul password=abc", "İstanbul password=[REDACTED:credential]"),
        # The gaps issue 11 found, closed.
        ("fnrA01019012345 x", "fnrA[REDACTED:national_id] x"),
        ("01019012345b", "[REDACTED:national_id]b"),
        ("a12345678901 and 12345678901a", "a[REDACTED:national_id] and [REDACTED:national_id]a"),
        ("fnr 01019012345.5", "fnr [REDACTED:national_id].5"),
        ("d-nr 41019012345", "d-nr [REDACTED:national_id]"),
        ("tlf 912-34-567 or 9123 4567", "tlf [REDACTED:phone] or [REDACTED:phone]"),
        ("tlf91234567", "tlf[REDACTED:phone]"),
        ('mail "kari.nordmann"@example.no', "mail [REDACTED:email]"),
        ("mail kari/nordmann@example.no", "mail [REDACTED:email]"),
        ("mail kari%40example.no end", "mail [REDACTED:email] end"),
        ("mail kari@eksempel.xn--rksmrgs-5wao1o", "mail [REDACTED:email]"),
        ("mail ola@øl.no", "mail [REDACTED:email]"),
    ],
)
def test_rule_redacts(clean: Sanitizer, text: str, expected: str) -> None:
    """Each rule replaces the sensitive part with its marker and keeps the rest."""
    assert clean.clean(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",
        "run 550E8400-E29B-41D4-A716-446655440000 done",
        "uuid 12345678-1234-1234-1234-123456789012 in text",
        "trace 0af7651916cd43dd8448eb211c80319c span b7ad6b7169203331",
        "2025-01-01T12:34:56.123456Z and 2025-01-01T00:00:00+01:00 and +0100",
        "dates 2025-01-01, 01.01.2025, 20250101, 20251231T120000Z",
        "sqlstate 23505, 40P01, P0001; http 200 401 503",
        "counts 0 7 42 1234 99999 1234567 12345678",
        "float 0.12345678 and 3.14159265358 and 0x12345678901",
        "123456789012 and hash a1b2c3d4e5f6a7b8c01019012345 and 0x12345678901",
        "dates 30112026 and 3011 2026, 2048 bytes, 1234 ms, 0.91234567, 91234567.5",
        "epoch 1700000000 and 1700000000000 ms",
        "nightly_key=2025-01-01 segment=3 tokens: 5 monkey=banana",
        "https://abc.supabase.co/rest/v1/rpc/claim_nightly_run",
        "user@localhost and @handle",
        "Key (certification_id) is missing",
        "Could not find the function public.pause_mentor(p_id, p_run, p_at) in the schema cache",
        "pair (a,b) and list (x, y, z)",
        "password=",
        "nothing to see here",
        "",
    ],
)
def test_left_alone(clean: Sanitizer, text: str) -> None:
    """Identifiers, timestamps, dates, codes, statuses and counts are not garbled."""
    assert clean.clean(text) == text


def test_lone_surrogate_text_is_handled(clean: Sanitizer) -> None:
    """Text that is not valid Unicode still gets its digit runs checked."""
    assert clean.clean("\ud800 01019012345") == "\ud800 [REDACTED:national_id]"


# ---------------------------------------------------------------- secrets by value


def test_registered_secret_is_redacted_by_value(clean: Sanitizer) -> None:
    """A registered value is replaced wherever it appears, whatever surrounds it."""
    clean.register_secret("hunter2hunter2")
    assert (
        clean.clean("pw:xhunter2hunter2x, hunter2hunter2") == f"pw:x{SECRET_MARK}x, {SECRET_MARK}"
    )


def test_registered_secret_escaped_forms(clean: Sanitizer) -> None:
    """The JSON-escaped and URL-encoded forms of a secret are redacted too."""
    clean.register_secret('s3cr"et/ø')
    assert clean.clean('{"v": "s3cr\\"et/\\u00f8"}') == f'{{"v": "{SECRET_MARK}"}}'
    assert clean.clean("?v=s3cr%22et%2F%C3%B8") == f"?v={SECRET_MARK}"


def test_registered_secret_is_stripped(clean: Sanitizer) -> None:
    """A secret read from a file with a trailing newline is matched without it."""
    clean.register_secret("  tok3n-value\n")
    assert clean.clean("x tok3n-value y") == f"x {SECRET_MARK} y"


@pytest.mark.parametrize("value", ["", "   ", "abc", "a" * (MIN_SECRET_LENGTH - 1)])
def test_short_secrets_are_ignored(clean: Sanitizer, value: str) -> None:
    """Empty and very short values are not registered: they would garble every line."""
    clean.register_secret(value)
    assert clean.clean("abc aaaaa") == "abc aaaaa"


def test_longest_secret_wins(clean: Sanitizer) -> None:
    """A secret containing another registered secret is replaced whole."""
    clean.register_secret("abcdef")
    clean.register_secret("abcdef123456")
    assert clean.clean("abcdef123456") == SECRET_MARK


def test_registering_invalidates_the_cache(clean: Sanitizer) -> None:
    """A text cleaned before a secret was registered is not served stale afterwards."""
    assert clean.clean("value s3cret-v") == "value s3cret-v"
    clean.register_secret("s3cret-v")
    assert clean.clean("value s3cret-v") == f"value {SECRET_MARK}"


def test_secret_inside_uuid_shaped_text(clean: Sanitizer) -> None:
    """Even a UUID-shaped value has registered secrets removed."""
    clean.register_secret("deadbeef")
    assert (
        clean.clean("deadbeef-e29b-41d4-a716-446655440000")
        == f"{SECRET_MARK}-e29b-41d4-a716-446655440000"
    )


def test_cache_is_bounded(clean: Sanitizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The short-text cache is emptied when full instead of growing without limit."""
    monkeypatch.setattr(sanitize, "_CACHE_MAX_ENTRIES", 3)
    for number in range(10):
        assert clean.clean(f"text {number}") == f"text {number}"
    assert len(clean._cache) <= 3


def test_short_text_is_served_from_the_cache(clean: Sanitizer) -> None:
    """A repeated short text is cleaned once and then returned from the cache."""
    first = clean.clean("mail ola@example.no")
    assert clean.clean("mail ola@example.no") is first


def test_long_text_is_not_cached(clean: Sanitizer) -> None:
    """Only short texts are cached; long ones are cleaned every time."""
    text = "x" * 500 + " ola@example.no"
    assert clean.clean(text).endswith("[REDACTED:email]")
    assert text not in clean._cache


# ---------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(texts_with_sensitive_parts())
def test_sensitive_parts_never_survive(sample: tuple[str, list[str], str]) -> None:
    """Secrets and PII embedded in arbitrary text never appear in the cleaned text."""
    text, hidden, noise_text = sample
    assert leaked(Sanitizer().clean(text), hidden, noise_text) == []


@settings(max_examples=200, deadline=None)
@given(registered_secrets, st.text(max_size=30), st.text(max_size=30))
def test_registered_secrets_never_survive(secret: str, before: str, after: str) -> None:
    """A registered secret is gone from any text, glued to anything."""
    sanitizer = Sanitizer()
    sanitizer.register_secret(secret)
    assert secret not in sanitizer.clean(before + secret + after)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_clean_accepts_any_text(text: str) -> None:
    """Any string comes back as a string, without raising."""
    assert isinstance(Sanitizer().clean(text), str)


@settings(max_examples=200, deadline=None)
@given(
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=9_999_999),
    st.sampled_from(["23505", "40001", "P0001", "57014", "200", "429", "503"]),
)
def test_harmless_values_are_unchanged(
    value: uuid.UUID, moment: datetime, count: int, code: str
) -> None:
    """UUIDs, ISO timestamps, small counts, SQLSTATEs and statuses pass unchanged."""
    text = f"id {value} at {moment.isoformat()} count {count} code {code}"
    assert Sanitizer().clean(text) == text


@pytest.mark.parametrize(
    "prefix", ["", "x ", "Run `python -m certexpiry remediate ", "a" * 80 + " "]
)
def test_a_uuid_whose_first_group_is_digits_is_kept_wherever_it_stands(
    clean: Sanitizer, prefix: str
) -> None:
    """A UUID that starts with eight digits (about 2% of random UUIDs) is an id, not a phone,
    also after a sentence long enough that the UUID search starts mid-text."""
    text = f"{prefix}78441741-4c9c-4fcf-a49b-e421b4c939c4` to fix"
    assert clean.clean(text) == text
