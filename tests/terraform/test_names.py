"""function_name's validation is derived from the names made of it: every length it accepts
gives valid IDs for every resource, every length it refuses would break one of them."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tests.terraform.tfmodule import Module, load_module

PROJECT_ID_MAX = "p" * 30  # project IDs are 6-30 chars (variables.tf)

# Each resource's own ID rule, from its API's documentation.
RULES: dict[tuple[str, str], re.Pattern[str]] = {
    # IAM: account ID 6-30 chars, lowercase letters, digits and hyphens.
    ("google_service_account", "account_id"): re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$"),
    # Pub/Sub: 3-255 chars, starting with a letter, not with "goog".
    ("google_pubsub_topic", "name"): re.compile(r"^(?!goog)[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$"),
    ("google_pubsub_subscription", "name"): re.compile(
        r"^(?!goog)[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$"
    ),
    # Cloud Scheduler job: letters, digits, hyphens and underscores, at most 500.
    ("google_cloud_scheduler_job", "name"): re.compile(r"^[A-Za-z0-9_-]{1,500}$"),
    # Artifact Registry repository: lowercase letters, digits, hyphens, at most 63.
    ("google_artifact_registry_repository", "repository_id"): re.compile(
        r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"
    ),
    # Cloud Storage bucket: 3-63 chars, not starting with "goog", not containing "google" or a
    # close misspelling of it such as "g00gle".
    ("google_storage_bucket", "name"): re.compile(
        r"^(?!goog)(?!.*g[o0][o0]gle)[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"
    ),
    # Cloud Functions (2nd gen) = Cloud Run service: at most 49 chars, no trailing hyphen.
    ("google_cloudfunctions2_function", "name"): re.compile(r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$"),
}


def _templates(tf: Module) -> Iterator[tuple[str, str, str]]:
    """(resource type, attribute, template) of every ID made from var.function_name."""
    for (rtype, attribute), _rule in RULES.items():
        for body in tf.of_type(rtype).values():
            value = body.get(attribute)
            if isinstance(value, str) and "var.function_name" in value:
                yield rtype, attribute, value


def _render(template: str, name: str) -> str:
    rendered = template.replace("${var.function_name}", name)
    return rendered.replace("${var.project_id}", PROJECT_ID_MAX)


def _valid_everywhere(tf: Module, name: str) -> bool:
    return all(
        RULES[(rtype, attribute)].match(_render(template, name))
        for rtype, attribute, template in _templates(tf)
    )


def _accepted(tf: Module, name: str) -> bool:
    """Whether function_name's validations accept `name`: the first (pattern and goog
    prefix) and the second (no google or a misspelling of it anywhere)."""
    first, second = (v["condition"] for v in tf.variables["function_name"]["validation"])
    pattern = re.search(r'regex\("(.+?)", var\.function_name\)', first)
    assert pattern is not None, first
    regex = pattern.group(1).replace("\\\\", "\\")
    forbidden = re.fullmatch(r'\$\{!can\(regex\("(.+?)", var\.function_name\)\)\}', second)
    assert forbidden is not None, second
    return (
        bool(re.match(regex, name))
        and not ('startswith(var.function_name, "goog")' in first and name.startswith("goog"))
        and not re.search(forbidden.group(1), name)
    )


def test_every_derived_id_is_covered() -> None:
    """The service accounts, topics, subscription, job, repository, bucket and function all
    take their IDs from function_name, and each is checked here."""
    found = {(rtype, attribute) for rtype, attribute, _ in _templates(load_module())}
    assert found == set(RULES)


def test_the_accepted_lengths_are_exactly_the_valid_ones() -> None:
    """For every length 1-40, the validation accepts a name exactly when all derived IDs are
    valid (3-26 characters: <name>-fn needs 6, <name>-evt may have 30)."""
    tf = load_module()
    accepted = [n for n in range(1, 41) if _accepted(tf, "a" * n)]
    valid = [n for n in range(1, 41) if _valid_everywhere(tf, "a" * n)]
    assert accepted == valid
    assert (accepted[0], accepted[-1]) == (3, 26)


def test_a_goog_prefix_is_refused_as_pubsub_refuses_it() -> None:
    """Pub/Sub refuses names starting with goog; so does the validation."""
    tf = load_module()
    assert not _valid_everywhere(tf, "google-sweep")
    assert not _accepted(tf, "google-sweep")
    assert _accepted(tf, "gooseberry")
    assert _valid_everywhere(tf, "gooseberry")


def test_google_anywhere_is_refused_as_cloud_storage_refuses_it() -> None:
    """Cloud Storage refuses a bucket name containing google (or g00gle) anywhere; the source
    bucket is <project>-<name>-src, so the validation refuses such a name too."""
    tf = load_module()
    for name in ("my-google-sweep", "sweep-g00gle", "certexpiry-googles"):
        assert not _valid_everywhere(tf, name), name
        assert not _accepted(tf, name), name
    for name in ("my-goggle-sweep", "certexpiry-nightly-sweep"):
        assert _valid_everywhere(tf, name), name
        assert _accepted(tf, name), name
