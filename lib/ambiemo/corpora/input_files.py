"""Reading a corpus's own files so that what is wrong with them is named: the file, the line,
and what to do (issue #25).

A user adding a first corpus hit `UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9
in position 8`, naming no file or line, and a `votes_disgust` column silently ignored (the
error then blamed `n_raters`). `read_text` / `read_csv` decode UTF-8 and name the line and
column of the first byte that is not; `check_vote_columns` refuses vote columns for classes
outside the label space, naming the columns and the corpus's classes; `check_file_names`
refuses file names or ids that are not UTF-8 (they could not be written to the Manifest).
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd


def read_text(path: str | Path) -> str:
    """The file's text, decoded as UTF-8 (a byte-order mark dropped); a byte that is not
    UTF-8 raises ValueError naming the file, line and column and how to convert it."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); "
            f"save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {path}.utf8` "
            f"and use that file") from None


def read_csv(path: str | Path, **kwargs) -> pd.DataFrame:
    """`pandas.read_csv` of a UTF-8 file, its encoding problems named as by `read_text`."""
    return pd.read_csv(io.StringIO(read_text(path)), **kwargs)


def check_vote_columns(columns: Sequence[str], classes: Sequence[str], source: str | Path, *,
                       corpus: str, prefix: str = "votes_") -> None:
    """Refuse vote columns (`<prefix><class>`) for classes outside `classes`: their votes
    would be dropped without a word and the counts no longer sum to the raters."""
    outside = [c for c in columns if str(c).startswith(prefix)
               and str(c)[len(prefix):] not in set(classes)]
    if outside:
        raise ValueError(f"{source}:1: vote column(s) {outside} are for classes outside "
                         f"{corpus}'s label space {list(classes)}; give a label_space that "
                         "has them, or merge or drop those columns")


def check_file_names(values: Iterable, what: str, source: str | Path) -> None:
    """Refuse values (file names found on disk, ids) that are not valid UTF-8 (Python keeps
    such bytes as surrogates, which no Parquet or SQLite file can hold); names the first by
    its bytes."""
    for i, v in enumerate(map(str, values)):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raw = v.encode("utf-8", "surrogateescape")
            raise ValueError(f"{source}: {what} {raw!r} (row {i + 1}) is not a UTF-8 name; "
                             "rename the file to UTF-8 (e.g. `convmv -f latin1 -t utf-8 "
                             "--notest <file>`) and prepare again") from None
