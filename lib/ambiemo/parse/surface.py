"""The surface forms chat models wrap an answer in, removed before it is read.

Instruction-tuned ALMs answer "emotion: probability" in Markdown: bold or italic labels
(`**Neutral**: 0.7`), bullet and numbered lists, tables (`| neutral | 0.7 |`), headings and
code fences. None of that carries meaning for the parse; it only hides the label from a
reader that expects plain lines. `plain` strips it; `clauses` cuts the result into the
units inside which a label and its number belong together.
"""
from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•·▪–]|\d{1,2}[.)])\s+", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$", re.M)
_EMPHASIS = re.compile(r"\*\*|__|[*`]")
# Clause ends: new lines, semicolons, a sentence's full stop ("0.7." keeps its decimals),
# ! and ?, and commas that are not inside a number ("1,000").
_CLAUSE_END = re.compile(r"\n|;|[.!?](?=\s|$)|(?<!\d),|,(?!\d)")


def plain(text: str) -> str:
    """`text` without code fences, headings, list markers, table rules and emphasis marks."""
    text = _FENCE.sub("", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARKER.sub("", text)
    text = _TABLE_RULE.sub("", text)
    return _EMPHASIS.sub("", text)


def _depths(text: str) -> list[int]:
    depth, out = 0, []
    for ch in text:
        depth = max(depth + (ch == "(") - (ch == ")"), 0) if ch != "\n" else 0
        out.append(depth)
    return out


def clauses(text: str) -> list[tuple[int, str]]:
    """(offset, clause) pieces of `text`, cut at clause ends; empty pieces dropped. Commas and
    semicolons inside parentheses do not cut ("Neutral (most likely, ~0.5)")."""
    out, start = [], 0
    depth = _depths(text)
    for m in _CLAUSE_END.finditer(text):
        if m.group() in ",;" and depth[m.start()] > 0:
            continue
        if text[start:m.start()].strip():
            out.append((start, text[start:m.start()]))
        start = m.end()
    if text[start:].strip():
        out.append((start, text[start:]))
    return out
