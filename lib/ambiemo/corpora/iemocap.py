"""IEMOCAP as human vote distributions, read from the release's EmoEvaluation files.

IEMOCAP (Busso, Bulut, Lee, Kazemzadeh, Mower, Kim, Chang, Lee & Narayanan, "IEMOCAP:
Interactive emotional dyadic motion capture database", Language Resources and Evaluation
42(4), 2008): ten actors in five dyadic sessions; each turn was labelled by (usually three)
evaluators who could name several categories. Jia et al. (2026) compare models with the
distribution of those evaluator votes, by default on the common 4-class space.

Which turns enter the study (`selection`):
- "consensus" (default): the standard IEMOCAP protocol -- a turn enters when its header
  label (the evaluators' majority) maps into the label space; for "4class" that is neu,
  hap + exc (merged into happy), ang and sad, the customary 5,531-turn set of the full
  release. Its distribution is the external evaluators' votes over those classes (votes
  outside them are dropped and counted). Accuracy is then comparable with the 4-class
  literature, and a turn whose majority was frustrated, other or "xxx" (no majority) does
  not enter with a cut-down, often unanimous distribution that would understate ambiguity.
- "votes": every turn with at least one evaluator vote inside the label space, whatever its
  header label (the rule of earlier versions of this loader; keeps many more turns, but the
  distributions of turns whose majority lies outside the space are truncated).

Layout read: `Session<k>/dialog/EmoEvaluation/<dialog>.txt` and
`Session<k>/sentences/wav/<dialog>/<utt>.wav`. A label file is a '%' header line, then
blank-line separated blocks whose first line is
`[start - end]<TAB>utt_id<TAB>code<TAB>[V, A, D]`, followed by `C-E<n>:` lines (categorical
evaluators), `C-F1:`/`C-M1:` (the actors' self-evaluation) and `A-...:` (dimensional ratings),
each `key:<TAB>Emotion; Emotion;<TAB>(free comment)`.
"""
from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.input_files import check_file_names, read_text
from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import classes_for, get_label_space

# The category names evaluators could pick, mapped to the "full" label space.
CATEGORIES = {"neutral": "neutral", "happiness": "happy", "excited": "excited",
              "sadness": "sad", "anger": "angry", "frustration": "frustrated",
              "surprise": "surprised", "fear": "fearful", "disgust": "disgusted",
              "other": "other"}
# Header consensus codes; "xxx" means the evaluators reached no majority.
CONSENSUS = {"neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad",
             "ang": "angry", "fru": "frustrated", "sur": "surprised", "fea": "fearful",
             "dis": "disgusted", "oth": "other", "xxx": None}
MULTI_LABEL = ("fraction", "each")
SELECTIONS = ("consensus", "votes")

_HEADER = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\w+)\s+"
                     r"\[\s*([-\d.]+),\s*([-\d.]+),\s*([-\d.]+)\s*\]\s*$")
# Comments may contain spaces, so the line is split at its key and its final "(...)".
_RATING = re.compile(r"^([CA])-([EFM]\d+):\s*(.*?)\s*(\([^()]*\))?\s*$")
_UTT = re.compile(r"^(Ses0[1-5])[FM]_.*_([FM])\d+$")


@register_corpus("iemocap")
def load_iemocap(root: Path, label_space: str | None = None, *,
                 self_evaluations: bool = False,
                 multi_label: str = "fraction",
                 selection: str = "consensus") -> pd.DataFrame:
    """IEMOCAP turns with the distribution of their categorical evaluations.

    `selection` picks the turns (module docstring): "consensus" (default; header label in
    the label space, turns outside counted in `dropped["consensus_outside_<space>:<label>"]`,
    "xxx" turns in `dropped["no_consensus"]`) or "votes" (any in-space vote).
    `self_evaluations=True` adds the actors' own ratings (`C-F1`, `C-M1`) to the external
    evaluators' (`C-E<n>`). `multi_label="fraction"` gives an evaluator who names k
    categories 1/k vote each (so every evaluator weighs the same); `"each"` gives 1 to each.
    Label spaces: "4class" (default; happy = Happiness + Excited, other votes dropped and
    counted, turns left without votes excluded and counted) and "full" (all ten).
    `n_raters` counts the evaluators with at least one vote inside the label space.
    """
    classes = list(classes_for("iemocap", label_space))
    space = label_space or "4class"
    if multi_label not in MULTI_LABEL:
        raise ValueError(f"iemocap: unknown multi_label {multi_label!r}; valid: {MULTI_LABEL}")
    if selection not in SELECTIONS:
        raise ValueError(f"iemocap: unknown selection {selection!r}; valid: {SELECTIONS}")
    # The label space's merges (labels.py: 4class counts Excited as happy) -- the same
    # definition the parser reads model answers with.
    project = get_label_space("iemocap", label_space).projection()
    # Not recursive: EmoEvaluation/Categorical/ etc. hold per-evaluator copies in another
    # format; and copies made on macOS carry "._Ses01F_impro01.txt" forks, which "Ses*" skips.
    files = sorted(p for k in range(1, 6) for p in
                   (Path(root) / f"Session{k}" / "dialog" / "EmoEvaluation").glob("Ses*.txt"))
    check_file_names(files, "file name", root)
    if not files:
        raise FileNotFoundError(
            f"iemocap: no Session<k>/dialog/EmoEvaluation/Ses*.txt under {root}")
    dropped: Counter[str] = Counter(no_votes=0)
    rows, votes = [], []
    for path in files:
        for turn in _read_file(path):
            dropped.update(turn.pop("_dropped"))
            if selection == "consensus":
                label = turn["label_consensus"]
                if label is None:
                    dropped["no_consensus"] += 1
                    continue
                if label not in project:
                    dropped[f"consensus_outside_{space}:{label}"] += 1
                    continue
            weights: Counter[str] = Counter()
            raters = 0
            for who, emotions in turn.pop("ratings").items():
                if who[0] != "E" and not self_evaluations:
                    continue
                w = 1.0 / len(emotions) if multi_label == "fraction" else 1.0
                kept = [project[e] for e in emotions if e in project]
                for e in emotions:
                    if e not in project:
                        dropped[f"votes_outside_{space}:{e}"] += 1
                for c in kept:
                    weights[c] += w
                raters += bool(kept)
            if raters == 0:
                dropped["no_votes"] += 1
                continue
            turn.update(n_raters=raters, audio_path=str(
                Path(root) / f"Session{turn['session']}" / "sentences" / "wav" / path.stem
                / f"{turn['utt_id']}.wav"))
            rows.append(turn)
            votes.append([weights[c] for c in classes])
    if not rows:
        raise ValueError(f"iemocap: no turn under {root} is left by selection={selection!r} "
                         f"in {space}: {dict(dropped)}")
    records = pd.DataFrame(rows)
    manifest = build_manifest(records, np.array(votes, dtype=float).reshape(-1, len(classes)),
                              classes, corpus="iemocap", label_space=space,
                              dropped=dict(dropped),
                              extras=["dialog", "sentence", "label_consensus", "valence",
                                      "arousal", "dominance"])
    manifest.attrs["selection"] = selection
    return manifest


def _read_file(path: Path) -> list[dict]:
    """Turns of one EmoEvaluation file, each with its evaluators' category lists."""
    turns: list[dict] = []
    turn: dict | None = None
    with io.StringIO(read_text(path)) as fh:   # not UTF-8: the file and line named
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():  # a blank line ends the block
                turn = None
                continue
            if line.startswith("%"):  # the column legend on line 1
                continue
            if line.startswith("["):
                turn = _parse_header(line, path, lineno)
                turns.append(turn)
                continue
            m = _RATING.match(line)
            if m is None or turn is None:
                where = "outside a turn block" if m else "not a rating line"
                raise ValueError(f"{path}:{lineno}: malformed line ({where}): {line!r}")
            kind, who, body, _comment = m.groups()
            if kind == "A":  # dimensional ratings: the header already holds their means
                continue
            emotions = _parse_emotions(body, path, lineno)
            if who in turn["ratings"]:
                # The same evaluator twice on one turn counts once (the first line).
                turn["_dropped"]["duplicate_evaluator_lines"] += 1
                continue
            turn["ratings"][who] = emotions
    return turns


def _parse_header(line: str, path: Path, lineno: int) -> dict:
    m = _HEADER.match(line)
    if m is None:
        raise ValueError(f"{path}:{lineno}: malformed turn header (expected "
                         f"'[start - end]<TAB>utt_id<TAB>code<TAB>[V, A, D]'): {line!r}")
    start, end, utt, code, v, a, d = m.groups()
    if code not in CONSENSUS:
        raise ValueError(f"{path}:{lineno}: unknown emotion code {code!r} "
                         f"(valid: {', '.join(CONSENSUS)})")
    who = _UTT.match(utt)
    if who is None:
        raise ValueError(f"{path}:{lineno}: turn name {utt!r} is not like Ses01F_impro01_F000")
    return {"utt_id": utt, "dialog": path.stem, "session": int(who[1][-1]),
            # The script or improvisation scenario (script01_1, impro04), which every
            # session's actors perform: the clips' second cluster beside the speaker.
            "sentence": re.sub(r"^Ses\d+[FM]_", "", path.stem),
            # Speaker = session + gender of the actor speaking this turn (last name part).
            "speaker": f"{who[1]}{who[2]}", "split": f"session{who[1][-1]}",
            "duration_s": float(end) - float(start), "label_consensus": CONSENSUS[code],
            "valence": float(v), "arousal": float(a), "dominance": float(d),
            "ratings": {}, "_dropped": Counter()}


def _parse_emotions(body: str, path: Path, lineno: int) -> tuple[str, ...]:
    names = [n.strip() for n in body.split(";") if n.strip()]
    if not names:
        raise ValueError(f"{path}:{lineno}: rating line names no emotion")
    out = []
    for name in names:
        key = name.lower()
        # "Other" sometimes carries its own description ("Other:anxious"); it stays "other".
        key = "other" if re.match(r"^other\b", key) else key
        if key not in CATEGORIES:
            raise ValueError(f"{path}:{lineno}: unknown emotion {name!r} "
                             f"(valid: {', '.join(c.title() for c in CATEGORIES)})")
        out.append(CATEGORIES[key])
    # One evaluator naming a category twice still names it once.
    return tuple(dict.fromkeys(out))
