"""Settings from the environment, and the one clear error for a bad one."""

from __future__ import annotations

import pytest

from certexpiry.errors import SettingsError
from certexpiry.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults match the spec: 420 s budget, 50 mentors a batch, offsets 30/7/1, Europe/Oslo."""
    for name in ("TIME_BUDGET_S", "BATCH_SIZE", "REMINDER_DAYS", "ORG_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.time_budget_s, settings.batch_size) == (420.0, 1000)
    assert settings.reminder_days == (30, 7, 1)
    assert settings.org_timezone == "Europe/Oslo"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting comes from its environment variable; offsets are normalised."""
    monkeypatch.setenv("REMINDER_DAYS", "1, 14,7,14")
    monkeypatch.setenv("BATCH_SIZE", "25")
    monkeypatch.setenv("CONTINUATION_TOPIC", "projects/p/topics/t")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw-secret-123@db/x")
    settings = load_settings()
    assert settings.reminder_days == (14, 7, 1)
    assert settings.batch_size == 25
    assert settings.continuation_topic == "projects/p/topics/t"
    assert settings.secret_values() == ["postgresql://u:pw-secret-123@db/x"]
    assert "pw-secret-123" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [
        ("REMINDER_DAYS", "30,x", "REMINDER_DAYS"),
        ("REMINDER_DAYS", "", "REMINDER_DAYS"),
        ("REMINDER_DAYS", "400", "REMINDER_DAYS"),
        ("BATCH_SIZE", "0", "BATCH_SIZE"),
        ("TIME_BUDGET_S", "600", "TIME_BUDGET_S"),
        ("ORG_TIMEZONE", "Mars/Olympus", "ORG_TIMEZONE"),
        ("CONTINUATION_TOPIC", "my-topic", "CONTINUATION_TOPIC"),
        ("SUPABASE_URL", "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY"),
    ],
)
def test_bad_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, setting: str
) -> None:
    """A bad value raises SettingsError naming the setting, never a pydantic traceback."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.setting == setting
    assert caught.value.log_context()["setting"] == setting


def test_key_without_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service-role key without SUPABASE_URL names the missing URL."""
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abcdefghijkl")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.setting == "SUPABASE_URL"


def test_settings_are_stripped_of_surrounding_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret saved with a trailing newline (`echo "$URL" | gcloud secrets create`) is the
    URL, not a DSN libpq refuses on every invocation (issue 28); every other text setting is
    stripped too, and the secret is registered for redaction as stripped."""
    from certexpiry.redact import shared_secrets

    url = "postgresql://u:pw-strip-secret-42@db/x"
    monkeypatch.setenv("DATABASE_URL", f"  {url}\n")
    monkeypatch.setenv("ORG_TIMEZONE", "Europe/Oslo\n")
    monkeypatch.setenv("CONTINUATION_TOPIC", " projects/p/topics/t\r\n")
    monkeypatch.setenv("BATCH_SIZE", "25\n")
    settings = load_settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == url
    assert settings.org_timezone == "Europe/Oslo"
    assert settings.continuation_topic == "projects/p/topics/t"
    assert settings.batch_size == 25
    assert settings.secret_values()[0] == url
    cleaned = shared_secrets().scrub(f"connect to {url} failed, password pw-strip-secret-42")
    assert "pw-strip-secret-42" not in cleaned
    assert url not in cleaned


def test_a_blank_secret_is_still_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection setting of only whitespace means "not configured", as an empty one does."""
    monkeypatch.setenv("DATABASE_URL", " \n")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    assert load_settings().database_url is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres.ref:Pa55wd@aws-0-eu-north-1.pooler.supabase.com:6543/postgres",
        "postgresql://postgres.ref:Pa55wd@aws-0-eu-north-1.pooler.supabase.com:5432/postgres"
        "?pgbouncer=true",
        "host=aws-0-eu-north-1.pooler.supabase.com port=6543 user=postgres password=Pa55wd",
    ],
)
def test_a_transaction_pooler_is_refused_naming_the_setting_only(url: str) -> None:
    """Supabase's transaction pooler breaks prepared statements: refused at cold start with
    the setting's name and never its value."""
    with pytest.raises(SettingsError) as refused:
        load_settings(database_url=url)
    assert refused.value.setting == "DATABASE_URL"
    assert "transaction pooler" in refused.value.reason
    assert "Pa55wd" not in str(refused.value)
    assert "pooler.supabase" not in refused.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres.ref:Pa55wd@aws-0-eu-north-1.pooler.supabase.com:5432/postgres",
        "postgresql://postgres:Pa55wd@db.ref.supabase.co/postgres",
        "host=db.ref.supabase.co port=5432 user=postgres password=Pa55wd",
    ],
)
def test_the_session_pooler_and_direct_connections_are_accepted(url: str) -> None:
    settings = load_settings(database_url=url)
    assert settings.database_url is not None
