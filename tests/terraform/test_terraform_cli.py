"""Checks that run the terraform CLI offline: fmt, variable validation, the archive allow-list.

No provider can be downloaded here, so `terraform validate`/`plan` of the whole module is out of
reach. These tests copy only provider-free files (variables.tf, source_files.tf) into a scratch
module, which `terraform init` accepts without any download, and let Terraform evaluate them.
When no terraform binary is installed they are skipped with that reason (pytest -ra prints it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.terraform.tfmodule import (
    REPO_ROOT,
    TERRAFORM_DIR,
    run_terraform,
    scratch_module,
    terraform_binary,
)

RUNTIME = REPO_ROOT / "certexpiry"
needs_terraform = pytest.mark.skipif(
    terraform_binary() is None,
    reason="terraform CLI not installed: fmt/validation/allow-list checks of terraform/ NOT run",
)

BUDGET_OUTPUT = """
locals {
  time_budget_s = var.timeout_seconds - var.budget_reserve_s
}
output "time_budget_s" {
  value = local.time_budget_s
}
"""


def _plan(module: Path, *args: str) -> tuple[int, str]:
    result = run_terraform(["plan", "-input=false", "-no-color", "-refresh=false", *args], module)
    return result.returncode, result.stdout + result.stderr


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    """`terraform fmt -check -recursive terraform/` reports no file to reformat."""
    result = run_terraform(
        ["fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        TERRAFORM_DIR.parent,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


@needs_terraform
def test_example_tfvars_pass_every_variable_validation(tmp_path: Path) -> None:
    """terraform.tfvars.example satisfies every validation rule and yields TIME_BUDGET_S 420."""
    module = scratch_module(tmp_path, "variables.tf", extra=BUDGET_OUTPUT)
    example = str(TERRAFORM_DIR / "terraform.tfvars.example")
    code, out = _plan(module, f"-var-file={example}", f"-out={module / 'plan'}")
    assert code == 0, out
    shown = run_terraform(["show", "-json", str(module / "plan")], module)
    assert shown.returncode == 0, shown.stderr
    outputs = json.loads(shown.stdout)["planned_values"]["outputs"]
    assert outputs["time_budget_s"]["value"] == 420


@needs_terraform
@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("timeout_seconds=600", "timeout_seconds must be"),
        ("runtime=python311", "runtime must be"),
        ("secret_version=latest", "secret_version must be a version number"),
        ("secret_version=0", "secret_version must be a version number"),
        ("function_name=my-google-sweep", "must not contain google"),
        ("function_name=sweep-g00gle", "must not contain google"),
        ("budget_reserve_s=5", "budget_reserve_s must be"),
        ("memory=512", "memory must be"),
        ("secret_env_var_name=SUPABASE_KEY", "secret_env_var_name must be"),
        ("schedule=0 2 * *", "schedule must fire once a day"),
        ("schedule=*/5 * * * *", "schedule must fire once a day"),
        ("reminder_days=30, 7", "reminder_days must be"),
        ('notification_channels=["email"]', "notification channel must"),
        ("completion_deadline_utc_hour=24", "completion_deadline_utc_hour must"),
        ("function_name=Nightly_Sweep", "function_name must be"),
        ("function_name=ab", "function_name must be 3-26 chars"),
        ("function_name=goog-sweep", "not start with goog"),
        ("function_name=a23456789012345678901234567", "function_name must be 3-26 chars"),
        ("region=europe-west", "region must be"),
        ("region=europe-west01", "region must be"),
        ("topic_message_retention=691200s", "7-day message age limit"),
        ("metric_visibility_wait_s=-1", "metric_visibility_wait_s must be"),
        ("outbox_stall_threshold_s=0", "outbox_stall_threshold_s must be"),
        ("outbox_stall_threshold_s=1.5", "outbox_stall_threshold_s must be"),
    ],
)
def test_bad_values_are_rejected_by_validation(
    tmp_path: Path, assignment: str, message: str
) -> None:
    """A wrong value for a variable stops the plan with that variable's own error message."""
    module = scratch_module(tmp_path, "variables.tf")
    code, out = _plan(module, "-var=project_id=certexpiry-test", f"-var={assignment}")
    assert code != 0
    assert message in " ".join(out.split()), out


@needs_terraform
@pytest.mark.parametrize(
    "assignments",
    [
        ("region=europe-west10",),
        ("region=northamerica-northeast1", "scheduler_region=me-central2"),
        ("region=africa-south1",),
        ("function_name=abc",),
        ("function_name=a2345678901234567890123456",),
        ("runtime=python314",),
        ("runtime=python313", "secret_version=12"),
    ],
)
def test_real_values_pass_validation(tmp_path: Path, assignments: tuple[str, ...]) -> None:
    """Real regions (two-digit ones included), the shortest and longest valid function names,
    every supported runtime (python314 included) and a pinned secret version pass every
    variable validation."""
    module = scratch_module(tmp_path, "variables.tf")
    code, out = _plan(
        module, "-var=project_id=certexpiry-test", *(f"-var={a}" for a in assignments)
    )
    assert code == 0, out


@needs_terraform
def test_archive_holds_the_runtime_and_no_tooling(tmp_path: Path) -> None:
    """The archive Terraform builds is the runtime package by directory: every module of
    certexpiry/ (subpackages too) but __main__, and no certexpiry_ops, tests or bench."""
    module = scratch_module(tmp_path, "source_files.tf")
    for path in REPO_ROOT.glob("certexpiry*/**/*.py"):
        target = tmp_path / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for name in ("main.py", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    result = run_terraform(
        ["console", "-no-color"], module, stdin="jsonencode(local.source_files)\n"
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(json.loads(result.stdout.strip()))
    assert files[:2] == ["certexpiry/__init__.py", "certexpiry/budget.py"]
    assert "main.py" in files
    assert "requirements.txt" in files
    assert not [f for f in files if f.startswith(("certexpiry_ops", "tests", "bench"))]
    assert "certexpiry/__main__.py" not in files
    assert all((REPO_ROOT / f).is_file() for f in files), files
    # Every runtime module, subpackages' too, is deployed without being listed anywhere.
    runtime = {path.relative_to(REPO_ROOT).as_posix() for path in RUNTIME.rglob("*.py")}
    assert set(files) == runtime - {"certexpiry/__main__.py"} | {"main.py", "requirements.txt"}


@needs_terraform
def test_the_archive_runs_without_the_tooling(tmp_path: Path) -> None:
    """main.py imports from an unpacked archive with no certexpiry_ops beside it, and loads none
    of the tooling's modules or libraries."""
    # The module sits beside the tree, as terraform/ does: it takes certexpiry/ by directory.
    module = scratch_module(tmp_path, "source_files.tf")
    shutil.copytree(REPO_ROOT / "certexpiry", tmp_path / "certexpiry")
    for name in ("main.py", "requirements.txt"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    result = run_terraform(
        ["console", "-no-color"], module, stdin="jsonencode(local.source_files)\n"
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(json.loads(result.stdout.strip()))
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in files:
            zipped.write(tmp_path / name, name)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    probe = (
        "import os, sys; sys.path.insert(0, os.getcwd()); import main, certexpiry; "
        "assert certexpiry.__file__.startswith(os.getcwd()), certexpiry.__file__; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('certexpiry_ops', 'pgserver', 'grpc', 'psutil', 'tests', 'bench') "
        "or m.startswith('google.cloud.logging')); "
        "open(os.environ['PROBE_ANSWER'], 'w').write(repr(bad)); assert not bad, bad"
    )
    answer = tmp_path / "answer.txt"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONSAFEPATH": "1", "PROBE_ANSWER": str(answer)},
    )
    # main.py captures stdout and stderr (every byte a JSON line, no text): the answer is a file.
    assert answer.read_text() == "[]", done.stdout
    assert done.returncode == 0, done.stdout
    assert all(json.loads(line) for line in (done.stdout + done.stderr).splitlines())


def _source_sha256(tree: Path) -> str:
    """local.source_sha256 (source_version.tf) rendered by Terraform over `tree`."""
    module = tree / "terraform"
    if not module.exists():
        module = scratch_module(tree, "source_files.tf", "source_version.tf")
    result = run_terraform(
        ["console", "-no-color"], module, stdin="jsonencode(local.source_sha256)\n"
    )
    assert result.returncode == 0, result.stderr
    value = json.loads(json.loads(result.stdout.strip()))
    assert isinstance(value, str)
    return value


@needs_terraform
def test_the_default_service_version_changes_with_the_code_only(tmp_path: Path) -> None:
    """SERVICE_VERSION defaults to a hash of the deployed files (local.source_sha256): a change
    to a file outside the archive (docs, tests, the toolkit) leaves it, a change to any
    deployed file changes it, and nothing else (a git SHA) goes into it."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO_ROOT / "certexpiry", tree / "certexpiry")
    for name in ("main.py", "requirements.txt"):
        shutil.copy(REPO_ROOT / name, tree / name)
    (tree / "docs").mkdir()
    (tree / "docs" / "deploy.md").write_text("# deploy\n")
    (tree / "certexpiry" / "__main__.py").write_text("# the ops command line\n", encoding="utf-8")
    first = _source_sha256(tree)
    assert len(first) == 64
    (tree / "docs" / "deploy.md").write_text("# deploy, reworded\n")
    (tree / "certexpiry" / "__main__.py").write_text("# changed\n", encoding="utf-8")
    assert _source_sha256(tree) == first
    sweep = tree / "certexpiry" / "sweep" / "invocation.py"
    sweep.write_text(sweep.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert _source_sha256(tree) != first
    main_tf = (TERRAFORM_DIR / "main.tf").read_text(encoding="utf-8")
    assert "coalesce(var.service_version, substr(local.source_sha256, 0, 12))" in main_tf
    variables = (TERRAFORM_DIR / "variables.tf").read_text(encoding="utf-8")
    block = variables[variables.index('variable "service_version"') :]
    assert 'default     = ""' in block[: block.index("validation")]
