"""pyproject.toml's dependencies are the requirements files: requirements.txt is what the Cloud
Function's build installs from the source archive (the function is not installed as a package),
pyproject is what `pip install -e ".[ops]"` installs; one pin in two places, kept equal here."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import certexpiry

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]


def _normalised(text: str) -> str:
    """One requirement in a canonical spelling: name case and separators, extras, specifier
    and marker order and quoting do not count."""
    requirement = Requirement(text)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{canonicalize_name(requirement.name)}{extras}{requirement.specifier}{marker}"


def _lines(name: str) -> list[str]:
    """A requirements file's lines without comments and blank lines."""
    lines = []
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _requirements(name: str, includes: dict[str, str]) -> list[str]:
    """A requirements file's requirements, normalised and sorted; `-r FILE` becomes the
    requirement `includes` gives for it (a file the group's install brings in by other means is
    mapped to the empty string and left out), `-e .` (the project itself) is left out."""
    found = []
    for line in _lines(name):
        if line.startswith("-r "):
            included = line.removeprefix("-r ").strip()
            assert included in includes, f"{name}: unexpected include {line!r}"
            if includes[included]:
                found.append(_normalised(includes[included]))
        elif line != "-e .":
            assert not line.startswith("-"), f"{name}: an option this test does not read: {line}"
            found.append(_normalised(line))
    return sorted(found)


def _group(requirements: list[str]) -> list[str]:
    return sorted(_normalised(text) for text in requirements)


def test_the_runtime_dependencies_are_requirements_txt() -> None:
    """[project] dependencies hold exactly requirements.txt's pins (the deploy reads the file)."""
    assert _group(PROJECT["dependencies"]) == _requirements("requirements.txt", {})


def test_the_ops_group_is_requirements_ops_txt() -> None:
    """The `ops` extra is requirements-ops.txt less its `-r requirements.txt` (an extra always
    brings the project's own dependencies)."""
    assert "-r requirements.txt" in _lines("requirements-ops.txt")
    ops = _requirements("requirements-ops.txt", {"requirements.txt": ""})
    assert _group(PROJECT["optional-dependencies"]["ops"]) == ops


def test_the_dev_group_is_requirements_dev_txt() -> None:
    """The `dev` extra is requirements-dev.txt, its `-r requirements-ops.txt` spelt
    certexpiry[ops]."""
    dev = _requirements("requirements-dev.txt", {"requirements-ops.txt": "certexpiry[ops]"})
    assert _group(PROJECT["optional-dependencies"]["dev"]) == dev


@pytest.mark.parametrize(
    "name", ["requirements.txt", "requirements-ops.txt", "requirements-dev.txt"]
)
def test_every_requirement_is_pinned(name: str) -> None:
    """Each requirement names one exact version, so the deploy, the venv and pip install -e
    resolve the same packages."""
    for line in _lines(name):
        if not line.startswith("-"):
            specifiers = list(Requirement(line).specifier)
            assert [spec.operator for spec in specifiers] == ["=="], line


def test_the_version_has_one_source() -> None:
    """pyproject reads the version from certexpiry.__version__, which the deployed function
    (uploaded as source, never installed: no package metadata to ask) reads directly."""
    assert "version" not in PROJECT
    assert "version" in PROJECT["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "certexpiry.__version__"}
    assert str(Version(certexpiry.__version__)) == certexpiry.__version__  # a PEP 440 version
