"""The structural filter: free text reduced to a template that can hold no value."""

from __future__ import annotations

import pytest

from certexpiry.log_template import (
    RAISED_MESSAGE,
    db_message,
    detail_template,
    routines,
    template,
    templated_traceback,
)
from certexpiry.sanitize import Sanitizer

UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'new row for relation "certifications" violates check constraint "c_check"',
            'new row for relation "?" violates check constraint "?"',
        ),
        (
            "invalid literal for int() with base 10: 'Kari'",
            "invalid literal for int() with base ?: '?'",
        ),
        ("can't parse “Kari Nordmann”", 'can\'t parse "?"'),
        ("bad row Ola Nordmann here", "bad row [name] here"),
        ("gateway said 502 Bad Gateway", "gateway said ? Bad Gateway"),
        ("row (3f1c,Ola,t) and (ola nordmann, x)", "row (?) and (ola nordmann, x)"),
        (
            "call apply_effects(uuid, date, integer[]) now",
            "call apply_effects(uuid, date, integer[]) now",
        ),
        (
            "timeout after 5000 ms, 2048 bytes, 3 s, 12%",
            "timeout after 5000 ms, 2048 bytes, 3 s, 12%",
        ),
        ("phone +47 912 34 567 and 01019012345", "phone ? and ?"),
        (
            f"run {UUID} and quoted '{UUID}' \"{UUID}\"",
            f"run {UUID} and quoted '{UUID}' \"{UUID}\"",
        ),
        ("identifiers fnr_01019012345 stay words", "identifiers fnr_01019012345 stay words"),
    ],
)
def test_template_keeps_words_and_replaces_values(text: str, expected: str) -> None:
    """Quoted and parenthesised values, numbers and name-like runs go; words, identifiers,
    UUIDs, type lists, HTTP phrases and numbers with a unit stay."""
    assert template(text) == expected


def test_detail_hint_and_context_keep_only_their_structure() -> None:
    """The free text after DETAIL/HINT/CONTEXT becomes placeholders; key columns of a unique
    violation and the function names (with lines) of CONTEXT are kept."""
    text = (
        'duplicate key value violates unique constraint "m_email_key"\n'
        "DETAIL:  Key (email, national_id)=(kari@x.no, 01019012345) already exists.\n"
        "HINT:  Kari Nordmann should be merged\n"
        "CONTEXT:  PL/pgSQL function public.refuse_one() line 3 at RAISE\n"
        "SQL statement \"update certifications set status = 'paused' where id = 7\"\n"
        "PL/pgSQL function certexpiry.apply_effects(uuid,date,integer[],uuid[]) line 12 at SQL statement"
    )
    assert template(text) == (
        'duplicate key value violates unique constraint "?"\n'
        "DETAIL: Key (email, national_id)=(?) already exists\n"
        "HINT: [hint]\n"
        "CONTEXT: PL/pgSQL function public.refuse_one() line 3 at RAISE < PL/pgSQL function "
        "certexpiry.apply_effects(uuid,date,integer[],uuid[]) line 12 at SQL statement"
    )


def test_sections_inline_and_without_a_known_shape() -> None:
    """A DETAIL of any other shape and a CONTEXT naming no function leave only placeholders."""
    assert template("failed DETAIL: Failing row contains (1, Kari). CONTEXT: somewhere 42") == (
        "failed DETAIL: [detail] CONTEXT: [context]"
    )
    assert detail_template('Key (email)=(kari@x.no) is not present in table "m".') == (
        "Key (email)=(?) is not present in table"
    )
    assert routines('SQL function "f" statement 1') == 'SQL function "f" statement 1'
    assert routines("nothing here") == "[context]"


def test_redact_runs_before_the_template() -> None:
    """The sanitiser runs first: a secret or token the template would cut apart is redacted
    whole, and its marker survives the template."""
    sanitizer = Sanitizer()
    sanitizer.register_secret("service-role-key-123456")
    text = "key service-role-key-123456 and token eyJ0000000000.0000000000.0000000000"
    assert template(text) == "key service-role-key-? and token eyJ0000000000.?"
    assert template(text, sanitizer.clean) == ("key [REDACTED:secret] and token [REDACTED:jwt]")


def test_db_message_drops_a_raise_whole() -> None:
    """A P0001 message is a function author's free text: nothing of it is kept."""
    assert db_message("mentor Kari Nordmann 01019012345 refused", "P0001") == RAISED_MESSAGE
    assert db_message('null value in column "email"', "23502") == 'null value in column "?"'
    assert db_message("x 12", None) == "x ?"


def test_templated_traceback_keeps_frames_and_types() -> None:
    """Every message of a chain (cause, context, notes, groups) is templated; frames, file
    names, line numbers and exception types are kept; a cycle does not loop."""

    name, national_id = "Kari Nordmann", "01019012345"  # the source lines show these names

    def fail() -> None:
        try:
            raise ValueError(f"mentor '{name}' has {national_id}")
        except ValueError as exc:
            error = KeyError(name)
            error.add_note(f"note about '{name}'")
            raise error from exc

    try:
        fail()
    except KeyError as exc:
        caught = exc
    text = templated_traceback(caught)
    assert name not in text
    assert "Kari" not in text
    assert national_id not in text
    assert "in fail\n" in text
    assert "test_log_template.py" in text
    assert "ValueError: mentor '?' has ?\n" in text
    assert "KeyError: '?'\nnote about '?'\n" in text
    group = ExceptionGroup(f"group of '{name}'", [RuntimeError(f"{name} {national_id}")])
    grouped = templated_traceback(group)
    assert "Kari" not in grouped
    assert national_id not in grouped
    assert "ExceptionGroup: group of '?'" in grouped
    assert "RuntimeError: [name] ?" in grouped
    looped = RuntimeError("a 'b'")
    cause = RuntimeError("c 'd'")
    looped.__context__ = cause
    cause.__context__ = looped
    assert templated_traceback(looped).count("RuntimeError: a '?'") == 1


def test_an_exception_without_a_message_keeps_its_type() -> None:
    """An exception with an empty message is formatted as its type alone."""
    assert templated_traceback(KeyError()) == "KeyError\n"


def test_notes_that_are_not_a_list_are_templated_too() -> None:
    """``__notes__`` set to a plain string is templated as one note."""
    error = ValueError("x")
    error.__notes__ = "for 'Kari Nordmann'"  # type: ignore[assignment]  # what a careless caller does
    assert templated_traceback(error) == "ValueError: x\nfor '?'\n"
