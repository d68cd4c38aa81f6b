"""The words the project defines: operation names, statuses, outcomes, setting names.

A lower-case word has the form of "kari" too, so a word is logged only if the project itself
defines it: the modules that own a vocabulary add it here where they define it (the contract
its RPC names and answer literals, the settings their variable names), at import, from
constants. Nothing read at run time is ever added.
"""

from __future__ import annotations

from collections.abc import Iterable


class Words:
    """A growing set of the project's own words (code constants only)."""

    def __init__(self) -> None:
        self._words: set[str] = set()

    def add(self, words: Iterable[str]) -> None:
        """Add constants defined by the calling module (never a value read at run time)."""
        self._words.update(words)

    def __contains__(self, word: object) -> bool:
        return word in self._words


WORDS = Words()
"""The process's vocabulary."""
