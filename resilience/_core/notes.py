"""PEP 678 notes on exceptions that policies hand back to the caller."""

from __future__ import annotations

__all__ = ["add_note"]


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, or PEP 678's documented fallback on Python 3.10."""
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)
    else:
        notes = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            exc.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)
