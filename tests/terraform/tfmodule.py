"""Read terraform/ with python-hcl2 into plain Python values, for the wiring tests.

python-hcl2 8.x keeps HCL's surface syntax in its output: string literals come back with their
quotes ('"nightly_sweep"'), expressions as "${...}", block labels quoted, blocks as lists of
dicts tagged "__is_block__". `load_module` undoes that: literals become plain strings, block
labels plain keys, and expressions stay "${...}" so a test can tell a reference from a literal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"

_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\t": "\t", "\\r": "\r"}
_ESCAPE_RE = re.compile(r'\\[\\"ntr]')


def unquote(value: str) -> str:
    """A quoted HCL string literal without its quotes and escapes; anything else unchanged."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], value[1:-1])
    return value


def is_expr(value: object) -> bool:
    """Whether a normalised value is an expression ("${...}") rather than a literal."""
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def expr(value: object) -> str:
    """The text of an expression value ("${var.x}" -> "var.x"); fails on a literal."""
    assert is_expr(value), f"expected an expression, got {value!r}"
    assert isinstance(value, str)
    return value[2:-1]


def normalise(value: Any) -> Any:
    """python-hcl2 output with quotes, escapes and block markers removed."""
    if isinstance(value, dict):
        return {
            unquote(key): normalise(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.startswith("__"))
        }
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return unquote(value)
    return value


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body (HCL blocks parse as lists)."""
    blocks = body.get(name)
    assert isinstance(blocks, list), f"expected exactly one {name} block"
    assert len(blocks) == 1, f"expected exactly one {name} block"
    only = blocks[0]
    assert isinstance(only, dict)
    return only


def strings_in(value: Any) -> list[str]:
    """Every string anywhere inside a normalised value (keys included)."""
    if isinstance(value, dict):
        found: list[str] = []
        for key, item in value.items():
            found.append(str(key))
            found.extend(strings_in(item))
        return found
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    if isinstance(value, str):
        return [value]
    return []


@dataclass
class Module:
    """All top-level definitions of a Terraform module directory, merged across its files."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        """One resource's body; fails with the names that do exist."""
        of_type = self.resources.get(rtype, {})
        assert name in of_type, f"no {rtype}.{name}; have {sorted(of_type)}"
        return of_type[name]

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        """All resources of one type, by name (empty when there are none)."""
        return self.resources.get(rtype, {})


def load_module(directory: Path = TERRAFORM_DIR) -> Module:
    """Parse every .tf file of `directory` into one Module."""
    module = Module()
    options = SerializationOptions(with_comments=False)
    paths = sorted(directory.glob("*.tf"))
    assert paths, f"no .tf files in {directory}"
    for path in paths:
        text = path.read_text(encoding="utf-8")
        module.files[path.name] = text
        parsed = normalise(hcl2.loads(text, serialization_options=options))
        for item in parsed.get("resource", []):
            for rtype, by_name in item.items():
                module.resources.setdefault(rtype, {}).update(by_name)
        for item in parsed.get("data", []):
            for dtype, by_name in item.items():
                module.data.setdefault(dtype, {}).update(by_name)
        for item in parsed.get("variable", []):
            module.variables.update(item)
        for item in parsed.get("output", []):
            module.outputs.update(item)
        for item in parsed.get("locals", []):
            duplicated = set(item) & set(module.locals)
            assert not duplicated, f"locals defined twice: {sorted(duplicated)}"
            module.locals.update(item)
        module.terraform.extend(parsed.get("terraform", []))
    return module


def terraform_binary() -> str | None:
    """Path of the terraform CLI, or None when it is not installed."""
    return shutil.which("terraform")


def run_terraform(
    args: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the terraform CLI offline: no CLI config, no version check, no prompts."""
    binary = terraform_binary()
    assert binary is not None
    # A scratch HOME with an empty CLI config: nothing is read from or written to the user's.
    with tempfile.TemporaryDirectory(prefix="tf-home-") as home:
        config = Path(home) / "terraformrc"
        config.touch()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "TF_CLI_CONFIG_FILE": str(config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }
        return subprocess.run(
            [binary, *args],
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def scratch_module(root: Path, *files: str, extra: str = "") -> Path:
    """A provider-free module in `root`/terraform with copies of `files` from terraform/,
    initialised (no download: these files need no provider)."""
    module = root / "terraform"
    module.mkdir(parents=True)
    for name in files:
        shutil.copy(TERRAFORM_DIR / name, module / name)
    if extra:
        (module / "extra.tf").write_text(extra)
    init = run_terraform(["init", "-input=false", "-no-color", "-backend=false"], module)
    assert init.returncode == 0, init.stdout + init.stderr
    return module


def evaluate(module: Path, expression: str, *variables: str) -> Any:
    """The value of `expression` in an initialised scratch module, through `terraform console`
    (variables as NAME=VALUE)."""
    args = ["console", "-no-color", *(f"-var={v}" for v in variables)]
    result = run_terraform(args, module, stdin=f"jsonencode({expression})\n")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(json.loads(result.stdout.strip()))
