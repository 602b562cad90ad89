"""A whole run folder as one Hugging Face dataset: configs `predictions`, `samples` and `clips`,
one split per corpus.

    python -m ambiemo.outputs.export runs/smoke exports/smoke
    >>> from datasets import load_dataset
    >>> load_dataset("exports/smoke", "predictions")["demo"]

What travels is what another lab needs to rescore the study of Jia et al. (2026) without
generating again: every stored answer (`samples`: the store's rows as written, text not
parsed, so the reader parses with its own parser version), every prediction (`predictions`:
each strategy's distribution per clip, model and prompt arm) and each clip's human votes
(`clips`: the Manifest without local paths). The folder is a dataset repository as the Hub
keeps one: Parquet files under `<config>/<corpus>.parquet` and a README whose YAML header
names the configs and their splits, so `datasets.load_dataset(DIR, config)` reads it (and
`push_to_hub` of the folder publishes it). Splits are named by corpus (a name with
characters a split may not hold is written with `_`; `ambiemo_export.json` maps them).
The `p_<class>` columns are the union of every corpus's classes, NaN for a class outside a
corpus's label space (one schema per config, as a dataset's splits share their features);
`ambiemo_export.json` and the card list each corpus's classes in order.
Reads only the run folder (`runs/<name>/`: manifests, pointers, sample store, predictions).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd

from ambiemo.labels import columns

CONFIGS = ("predictions", "samples", "clips")
LOCAL_COLUMNS = ("audio_path", "has_audio")   # this machine's paths: not exported
DEFAULT_LICENCE = ("Derived from the corpora named below: whoever uses these answers is bound "
                   "by each corpus's licence and by each model's terms of use.")


def split_name(corpus: str) -> str:
    """`corpus` as a dataset split name (letters, digits, `_`; `.` between words)."""
    name = re.sub(r"\W", "_", corpus)
    return name if re.fullmatch(r"\w+(\.\w+)*", name) else f"corpus_{name}"


def run_corpora(run_dir: Path) -> list[str]:
    """The corpora of a run folder: those with a Manifest and Predictions."""
    found = sorted(p.stem for p in (run_dir / "manifests").glob("*.parquet"))
    return [c for c in found if (run_dir / f"predictions_{c}.parquet").is_file()]


def _pointers(run_dir: Path, corpus: str) -> list[dict]:
    out = []
    for p in sorted((run_dir / "samples").glob(f"*__{corpus}__*.json")):
        fields = json.loads(p.read_text())
        if fields.get("corpus") == corpus:
            out.append(fields | {"verify": p.name.endswith("__verify.json")})
    return out


def collect(run_dir: str | Path) -> dict:
    """Every table of the export from `run_dir`: {config: {corpus: frame}}, and the
    metadata (classes per corpus, runs)."""
    from ambiemo.sampling.store import SampleStore

    run_dir = Path(run_dir)
    corpora = run_corpora(run_dir)
    if not corpora:
        raise FileNotFoundError(f"{run_dir}: no corpus with a Manifest (manifests/<corpus>."
                                "parquet) and Predictions (predictions_<corpus>.parquet): run "
                                "the study's score stage first")
    tables = {c: {} for c in CONFIGS}
    meta = {"corpora": {}, "run": run_dir.name}
    store_path = run_dir / "samples.sqlite"
    with SampleStore(store_path) as store:
        settings = store.runs().set_index("run_key")
        for corpus in corpora:
            manifest = pd.read_parquet(run_dir / "manifests" / f"{corpus}.parquet")
            classes = list(manifest.attrs.get("classes") or
                           [c[2:] for c in manifest if c.startswith("p_")])
            clips = manifest.drop(columns=[c for c in LOCAL_COLUMNS if c in manifest])
            tables["clips"][corpus] = clips.assign(corpus=corpus)
            tables["predictions"][corpus] = pd.read_parquet(
                run_dir / f"predictions_{corpus}.parquet").assign(corpus=corpus)
            runs, frames = [], []
            for ptr in _pointers(run_dir, corpus):
                key = ptr["run_key"]
                if key not in settings.index:
                    raise KeyError(f"{run_dir}: pointer of {ptr.get('model')} / {corpus} names "
                                   f"run {key}, which the sample store does not hold")
                rows = store.read(key, parse=False)
                kind = "verify" if ptr["verify"] else "generate"
                frames.append(rows.assign(run_key=key, model=ptr["model"],
                                          prompt=ptr.get("prompt", ""), run=kind,
                                          corpus=corpus))
                runs.append({"run_key": key, "model": ptr["model"], "prompt": ptr.get("prompt"),
                             "run": kind, "settings": store.settings(key)})
            tables["samples"][corpus] = (pd.concat(frames, ignore_index=True) if frames
                                         else pd.DataFrame({"corpus": []}))
            meta["corpora"][corpus] = {
                "split": split_name(corpus), "classes": classes,
                "label_space": manifest.attrs.get("label_space"),
                "merges": manifest.attrs.get("merges", {}),
                "limit": manifest.attrs.get("limit"), "clips": len(manifest), "runs": runs}
    return {"tables": tables, "meta": meta}


def _one_schema(frames: dict[str, pd.DataFrame], classes: list[str]) -> dict[str, pd.DataFrame]:
    """Every corpus's frame with the same columns in the same order (the p_<class> union)."""
    cols = []
    for f in frames.values():
        cols += [c for c in f.columns if c not in cols]
    p_cols = [c for c in columns("p", classes) if c in cols]
    votes = [c for c in columns("votes", classes) if c in cols]
    human = [c for c in columns("human_p", classes) if c in cols]
    rest = [c for c in cols if c not in {*p_cols, *votes, *human}]
    order = ["corpus", *[c for c in rest if c != "corpus"], *votes, *p_cols, *human]
    return {k: f.reindex(columns=order) for k, f in frames.items()}


def _write_config(frames: dict[str, pd.DataFrame], folder: Path) -> list[tuple[str, str]]:
    """Parquet files with one Arrow schema (inferred from all splits together)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    together = pd.concat(list(frames.values()), ignore_index=True)
    for c in together.columns:   # lists and dicts (label-score dists) survive; mixed objects
        if together[c].dtype == object and together[c].map(
                lambda v: isinstance(v, (dict, set))).any():
            together[c] = together[c].map(lambda v: None if v is None else json.dumps(v))
    schema = pa.Table.from_pandas(together, preserve_index=False).schema.remove_metadata()
    written, start = [], 0
    for corpus, f in frames.items():
        part = together.iloc[start:start + len(f)]
        start += len(f)
        path = folder / f"{split_name(corpus)}.parquet"
        pq.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), path)
        written.append((split_name(corpus), f"{folder.name}/{path.name}"))
    return written


def card(meta: dict, files: dict[str, list[tuple[str, str]]], licence: str) -> str:
    lines = ["---", "license: other", "tags:", "- emotion-recognition",
             "- audio-language-models", "- test-time-scaling", "configs:"]
    for config, splits in files.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: {p}" for s, p in splits]
    lines += ["---", "", f"# ambiemo export: {meta['run']}", "",
              "Answers of audio-language models to the clips of each corpus, the predictions "
              "built from them and the human votes, exported by ambiemo (a reproduction of Jia "
              "et al., 2026, *Decoding Ambiguous Emotions with Test-Time Scaling in "
              "Audio-Language Models*) so they can be rescored without generating again.", "",
              "```python", "from datasets import load_dataset",
              "predictions = load_dataset(PATH, \"predictions\")   # one split per corpus",
              "samples = load_dataset(PATH, \"samples\")           # the answers as stored",
              "clips = load_dataset(PATH, \"clips\")               # the human votes", "```", "",
              "| corpus | split | clips | classes (order of p_<class>) | limit |",
              "|---|---|---:|---|---|"]
    for corpus, m in meta["corpora"].items():
        lines.append(f"| `{corpus}` | `{m['split']}` | {m['clips']} | "
                     + ", ".join(m["classes"]) + f" | {m['limit'] or 'all clips'} |")
    lines += ["", "`p_<class>` columns are the union of the corpora's classes; a class outside "
              "a corpus's label space is empty (NaN) in its split.", "", "## Runs", "",
              "| corpus | run key | model | prompt | run |", "|---|---|---|---|---|"]
    for corpus, m in meta["corpora"].items():
        lines += [f"| `{corpus}` | `{r['run_key']}` | `{r['model']}` | {r['prompt']} | "
                  f"{r['run']} |" for r in m["runs"]]
    lines += ["", "Each run's settings (everything that entered its run key) are in "
              "`ambiemo_export.json`.", "", "## Licence notes", "", licence.strip(), ""]
    return "\n".join(lines)


def export_study(run_dir: str | Path, out: str | Path, *, licence: str = DEFAULT_LICENCE
                 ) -> Path:
    """Write the export of run folder `run_dir` to `out` (replacing an earlier export there;
    a non-empty folder that is not one is refused); returns `out`."""
    got = collect(run_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / "ambiemo_export.json").is_file():
            raise FileExistsError(f"{out} exists and is not an ambiemo export: give a new or "
                                  "empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = []
    for m in got["meta"]["corpora"].values():
        classes += [c for c in m["classes"] if c not in classes]
    files = {config: _write_config(_one_schema(got["tables"][config], classes), out / config)
             for config in CONFIGS}
    (out / "ambiemo_export.json").write_text(json.dumps(got["meta"], indent=1, default=str)
                                             + "\n")
    (out / "README.md").write_text(card(got["meta"], files, licence))
    return out
