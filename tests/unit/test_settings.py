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
    assert settings.secret_values() == [
        "postgresql://u:pw-secret-123@db/x",
        "u:pw-secret-123",
        "pw-secret-123",
    ]
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
