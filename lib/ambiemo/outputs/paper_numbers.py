"""Numbers reported for Jia et al. (2026), set beside the reproduced ones and never mixed in.

The reported numbers live in one data file (data/reported/jia2026.yaml) with their source
(paper, authors, year, which public claim). `load_reported` reads and checks it;
`reported_beside` joins it to a reproduced summary so that each row shows the reported value
(as published, and on the reproduced scale), the reproduced value with its interval, and the
difference, in separate, labelled columns. Accuracy is published in percent and reproduced as
a fraction: the conversion (divide by 100) is explicit and named in the `unit_note` column.

Each reported number is set beside one prompt arm of the run (`generation.prompts`): the
file's `arm.prompt` (an entry may name its own `prompt`). The paper's baseline maps to
`greedy` on the `distribution` arm: its IEMOCAP baseline (JS .359, R² +.356 at 29 %
accuracy) cannot come from one-hot answers, so its candidates were most likely
verbalised distributions. The table's `mapping` column states this for every row, and
names the verifier that judges in place of the study's (`substitutions.verifier` in the
file). `capacity_caveats` says where a model stands in for one of another size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ambiemo import metrics as M
from ambiemo.tts import STRATEGIES

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "data" / "reported" / "jia2026.yaml"
KEYS = ("model", "model_as_published", "corpus", "strategy", "strategy_as_published",
        "metric", "value", "unit", "claim")
UNITS = {"fraction": 1.0, "percent": 100.0}   # divide by this to reach the 0-1 scale
SOURCE_KEYS = ("title", "authors", "year", "kind")
ARM_KEYS = ("prompt", "why")


class ReportedError(ValueError):
    """A reported-numbers file that cannot be used; the message names the file and entry."""


def load_reported(path: str | Path = DEFAULT_PATH) -> pd.DataFrame:
    """The reported numbers, one row per (model, corpus, strategy, metric), with `value` as
    published, `unit`, `reported` (on the 0-1 scale of the reproduced tables) and `source`
    (one line: authors, year, title, kind). `attrs["source"]` holds the source mapping."""
    path = Path(path)
    if not path.is_file():
        raise ReportedError(f"reported numbers file {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    source = data.get("source") or {}
    lacking = [k for k in SOURCE_KEYS if k not in source]
    if lacking:
        raise ReportedError(f"{path}: source lacks {lacking}; every number needs its source")
    arm = data.get("arm")   # optional: without it, a run's only arm is used
    if arm is not None and (not isinstance(arm, dict)
                            or any(not isinstance(arm.get(k), str) for k in ARM_KEYS)):
        raise ReportedError(f"{path}: arm must be a mapping with {list(ARM_KEYS)} (the prompt "
                            f"arm the numbers are set beside, and why), got {arm!r}")
    arm = arm or {"prompt": None, "why": ""}
    rows = []
    for i, entry in enumerate(data.get("numbers") or []):
        where = f"{path}: numbers[{i}]"
        if not isinstance(entry, dict):
            raise ReportedError(f"{where}: must be a mapping, got {entry!r}")
        missing = [k for k in KEYS if k not in entry]
        if missing:
            raise ReportedError(f"{where}: missing key(s) {missing}")
        if entry["unit"] not in UNITS:
            raise ReportedError(f"{where}: unit {entry['unit']!r} is not one of {sorted(UNITS)}")
        if entry["strategy"] not in STRATEGIES:
            raise ReportedError(f"{where}: unknown strategy {entry['strategy']!r}; "
                                f"valid: {sorted(STRATEGIES)}")
        try:
            M.get_metric(entry["metric"])
        except KeyError as e:
            raise ReportedError(f"{where}: {e.args[0]}") from None
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ReportedError(f"{where}: value must be a finite number, got {value!r}")
        if entry["metric"] != "r2" and not 0 <= value <= UNITS[entry["unit"]]:
            raise ReportedError(f"{where}: value {value} is outside 0..{UNITS[entry['unit']]:g} "
                                f"for a {entry['metric']} in {entry['unit']}")
        unknown = sorted(set(entry) - {*KEYS, "prompt"})
        if unknown:
            raise ReportedError(f"{where}: unknown key(s) {unknown}; valid: "
                                f"{sorted({*KEYS, 'prompt'})}")
        rows.append({**{k: entry[k] for k in KEYS}, "prompt": entry.get("prompt", arm["prompt"])})
    if not rows:
        raise ReportedError(f"{path}: no numbers")
    out = pd.DataFrame(rows)
    dup = out.duplicated(["model", "corpus", "strategy", "metric"], keep=False)
    if dup.any():
        raise ReportedError(f"{path}: the same number is given twice: "
                            f"{out.loc[dup, ['model', 'corpus', 'strategy', 'metric']].values.tolist()}")
    out["reported"] = out["value"] / out["unit"].map(UNITS)
    out["source"] = (f"{source['authors']} ({source['year']}), \"{source['title']}\"; "
                     f"{source['kind']}")
    out.attrs["source"] = dict(source)
    out.attrs["arm"] = dict(arm)
    out.attrs["substitutions"] = _substitutions(data.get("substitutions"), path)
    return out


def _substitutions(data, path) -> dict:
    """The file's `substitutions` (verifier: {published, used, why}; models: a list of
    {published, published_params, used, why}), checked."""
    data = data or {}
    if not isinstance(data, dict) or set(data) - {"verifier", "models"}:
        raise ReportedError(f"{path}: substitutions must be a mapping with keys verifier and "
                            f"models, got {data!r}")
    verifier = data.get("verifier")
    if verifier is not None and (not isinstance(verifier, dict) or any(
            not isinstance(verifier.get(k), str) for k in ("published", "used", "why"))):
        raise ReportedError(f"{path}: substitutions.verifier needs published, used and why "
                            f"(text), got {verifier!r}")
    models = data.get("models") or []
    for i, m in enumerate(models):
        ok = (isinstance(m, dict) and all(isinstance(m.get(k), str)
                                          for k in ("published", "used", "why"))
              and isinstance(m.get("published_params"), (int, float))
              and not isinstance(m.get("published_params"), bool)
              and m["published_params"] > 0)
        if not ok:
            raise ReportedError(f"{path}: substitutions.models[{i}] needs published, used, why "
                                f"(text) and published_params (a positive count), got {m!r}")
    return {"verifier": verifier, "models": list(models)}


def capacity_caveats(n_params: dict, reported: pd.DataFrame | None = None) -> list[str]:
    """One sentence per model of the run that stands in for a study model of another size
    (`substitutions.models`), with the span of the run's open models: e.g. Audio Flamingo 3
    (8.27 B) for the study's 3 B Audio Flamingo 2, which leaves the open models 0.03
    decades apart. `n_params`: model -> parameter count (None: not published)."""
    reported = load_reported() if reported is None else reported
    subs = reported.attrs.get("substitutions", {}).get("models", [])
    known = {m: float(v) for m, v in n_params.items() if v is not None}
    if not known:
        return []
    lp = np.log10(list(known.values()))
    span = float(lp.max() - lp.min())
    out = []
    for s in subs:
        if s["used"] not in known:
            continue
        out.append(f"{s['used']} ({known[s['used']] / 1e9:.2f} B) stands in for the study's "
                   f"{s['published_params'] / 1e9:g} B {s['published']} ({s['why']}), so the "
                   f"open models of this run span {span:.2f} decades of parameter count "
                   f"(the study's span with {s['published']} is not reproduced).")
    return out


def reported_beside(reproduced: pd.DataFrame, reported: pd.DataFrame | None = None, *,
                    verifier: str | None = None) -> pd.DataFrame:
    """Every reported number beside the matching reproduced one.

    `reproduced` is a summary table (one row per corpus, model, strategy; a `corpus` column
    and `<metric>`, `<metric>_lo`, `<metric>_hi` columns, as summary_table writes them plus
    the corpus; with a `prompt` column, the reported number's arm is matched). Columns of
    the result: corpus, model, prompt, strategy, metric, mapping (published strategy -> this
    project's strategy and arm), then
    `reported_as_published` (text, with its unit), `reported` (0-1 scale), `unit_note`,
    `reproduced`, `reproduced_lo`, `reproduced_hi`, `reproduced_minus_reported`, `status`
    ("reproduced" or why not), `claim`, `source`. Reported numbers without a reproduced
    match stay, with NaN reproduced values and the reason in `status`. For a strategy that
    reads a verifier, `mapping` names the study's verifier and the one that judged here
    (`verifier`: the run's verification model; default the file's `substitutions`).
    """
    reported = load_reported() if reported is None else reported
    if "prompt" not in reported:   # a hand-built frame: set beside the only arm there is
        reported = reported.assign(prompt=None)
    need = {"corpus", "model", "strategy"}
    if not need <= set(reproduced.columns):
        raise KeyError(f"reported_beside: reproduced needs columns {sorted(need)}, "
                       f"has {sorted(reproduced.columns)}")
    swap = dict(reported.attrs.get("substitutions", {}).get("verifier") or {})
    if verifier is not None and swap:
        swap = swap | ({"used": verifier, "why": "this run's verifier"}
                       if verifier != swap["used"] else {})
    verifier = swap
    out = []
    for r in reported.itertuples(index=False):
        match = reproduced[(reproduced["corpus"] == r.corpus) & (reproduced["model"] == r.model)
                           & (reproduced["strategy"] == r.strategy)]
        arm = r.prompt if isinstance(r.prompt, str) else None
        if arm is not None and "prompt" in match:
            match = match[match["prompt"] == arm]
        if "n" in match and match["n"].nunique() > 1:  # several n (a scaling curve): the largest
            match = match[match["n"] == match["n"].max()]
        if len(match) > 1:
            arms = (f" (prompt arms {sorted(match['prompt'].unique())}: name the one the "
                    "numbers map to, `arm:` in the reported file)"
                    if "prompt" in match and match["prompt"].nunique() > 1 else "")
            raise ValueError(f"reported_beside: {len(match)} reproduced rows for "
                             f"{r.corpus}/{r.model}/{r.strategy}{arms}; pass one row per group")
        if match.empty:
            on_arm = f" on the {arm} prompt arm" if arm else ""
            status = f"not run: no {r.model} / {r.strategy}{on_arm} on {r.corpus} in this config"
            value = lo = hi = np.nan
        elif r.metric not in match:
            status = f"not run: the reproduced summary has no {r.metric}"
            value = lo = hi = np.nan
        else:
            row = match.iloc[0]
            value = float(row[r.metric])
            lo, hi = (float(row.get(f"{r.metric}_{s}", np.nan)) for s in ("lo", "hi"))
            status = "reproduced" if np.isfinite(value) else "reproduced value missing"
        unit = "%" if r.unit == "percent" else ""
        out.append(dict(
            corpus=r.corpus, model=r.model, prompt=arm, strategy=r.strategy, metric=r.metric,
            mapping=(f"{r.strategy_as_published} -> {r.strategy}"
                     + (f" on the {arm} prompt arm" if arm else "")
                     + (f"; verifier {verifier['published']} -> {verifier['used']} "
                        f"({verifier['why']})"
                        if verifier and "verifier" in STRATEGIES[r.strategy].needs else "")),
            reported_as_published=f"{r.value:.{2 if unit else 4}f}{unit} ({r.model_as_published}, "
                                  f"{r.strategy_as_published})",
            reported=r.reported,
            unit_note=("published in percent, divided by 100" if r.unit == "percent"
                       else "published on the 0-1 scale"),
            reproduced=value, reproduced_lo=lo, reproduced_hi=hi,
            reproduced_minus_reported=value - r.reported, status=status, claim=r.claim,
            source=r.source))
    return pd.DataFrame(out)
