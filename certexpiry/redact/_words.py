"""The words the project defines (operations, statuses, outcomes, setting names). A lower-case
word has the form of "kari" too, so a word is logged only if the project's code adds it here,
at import, from constants; nothing read at run time."""

from collections.abc import Iterable


class Words:
    """A growing set of the project's own words."""

    def __init__(self) -> None:
        self._words: set[str] = set()

    def add(self, words: Iterable[str]) -> None:
        """Add constants of the calling module (never a value read at run time)."""
        self._words.update(words)

    def __contains__(self, word: object) -> bool:
        return word in self._words


WORDS = Words()
"""The process's vocabulary."""
