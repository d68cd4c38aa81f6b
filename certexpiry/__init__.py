"""certexpiry: the nightly certification-expiry job (reminders, auto-pause, monitoring, audit)."""

# The one version source: pyproject.toml reads it ([tool.setuptools.dynamic]); the deployed
# function, uploaded as source and never installed, has no package metadata and reads it here.
__version__ = "0.1.0"
