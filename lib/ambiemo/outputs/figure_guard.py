"""One figure that cannot be drawn never costs a stage its tables or its other figures.

A score stage runs after hours of generation; one degenerate model (a constant answer, no
answer that parses, one clip) can make a figure's data empty or its error bars odd. The
stage writes its tables first, then draws each figure through `FigureGuard.draw`: a figure
that fails is a `FigureNotDrawn` warning naming the figure and the error, and a missing
figure listed in `missing` (the stage's status note says which), never a failed stage.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable


class FigureNotDrawn(UserWarning):
    """A figure was left out because drawing it failed; the message names it and why."""


class FigureGuard:
    """Draws figures one at a time; remembers the ones that failed and why."""

    def __init__(self) -> None:
        self.missing: dict[str, str] = {}   # figure name -> "ErrorType: message"

    def draw(self, name: str, build: Callable[[], object]):
        """`build()` (which draws and saves the figure), or None when it raised: the error
        is then a `FigureNotDrawn` warning and `missing[name]`."""
        try:
            return build()
        except Exception as e:   # any error of one figure: the others and the tables stand
            reason = f"{type(e).__name__}: {e}"
            self.missing[name] = reason
            warnings.warn(f"figure {name} not drawn: {reason}", FigureNotDrawn, stacklevel=2)
            return None

    def note(self) -> str:
        """One line for a status note ("" when every figure was drawn)."""
        if not self.missing:
            return ""
        return (f"{len(self.missing)} figure(s) not drawn: "
                + "; ".join(f"{n} ({why})" for n, why in self.missing.items()))
