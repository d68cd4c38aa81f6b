"""certexpiry: the nightly certification-expiry job (reminders, auto-pause, monitoring, audit)."""

__version__ = "0.1.0"
