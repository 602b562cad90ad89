"""A run's samples and predictions as a Hugging Face dataset folder, and back.

Generating answers from audio-language models is the expensive step of Jia et al. (2026);
another lab can rescore, try a new strategy or a new metric on the same answers without
generating again if the answers travel. `export_run` writes one folder:

- `dataset/` — a `DatasetDict` (`samples`, `predictions`) written by `save_to_disk`;
- `samples.parquet`, `predictions.parquet` — the same rows for any Parquet reader (and the
  Hub viewer, through the card's `configs`);
- `README.md` — the dataset card: corpus, classes, models, prompts, run keys with their
  settings, and the licence notes (the corpus's terms bind the derived answers too);
- `ambiemo_export.json` — what `read_export` needs (classes, corpus, runs).

`read_export` returns the tables as they went in. A whole run folder (every corpus, one
split each) is exported by `python -m ambiemo.outputs.export RUN DIR` (`main`, below;
outputs/study_export.py) and read with `datasets.load_dataset(DIR, "predictions")`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ambiemo.labels import columns

SAMPLE_KEYS = ("run_key", "model", "utt_id", "kind", "idx")
PREDICTION_KEYS = ("utt_id", "model", "strategy", "n")


@dataclass(frozen=True)
class Export:
    samples: pd.DataFrame
    predictions: pd.DataFrame
    classes: list[str]
    corpus: str
    runs: list[dict]


def _check(table: pd.DataFrame, need, what: str) -> None:
    lacking = [c for c in need if c not in table]
    if lacking:
        raise ValueError(f"export_run: {what} lack column(s) {lacking}; have {list(table)}")


def _prompt_of(settings: dict) -> str:
    prompt = settings.get("prompt")
    if isinstance(prompt, dict):
        return ", ".join(f"{k} {v}" for k, v in prompt.items())
    return str(prompt) if prompt is not None else "not recorded"


def dataset_card(*, corpus: str, classes, runs, licence: str, n_samples: int,
                 n_predictions: int) -> str:
    """The README.md of an export: YAML header for the Hub, then what a reader needs."""
    models = sorted({r["model"] for r in runs})
    lines = ["---", "license: other", "tags:", "- emotion-recognition", "- audio-language-models",
             "- test-time-scaling", "configs:", "- config_name: samples", "  data_files: "
             "samples.parquet", "- config_name: predictions", "  data_files: predictions.parquet",
             "---", "", f"# ambiemo export: {corpus}", "",
             "Answers of audio-language models to the clips of one corpus and the predictions "
             "built from them, exported by ambiemo (a reproduction of Jia et al., 2026, "
             "*Decoding Ambiguous Emotions with Test-Time Scaling in Audio-Language Models*) so "
             "they can be rescored without generating again.", "",
             f"- corpus: `{corpus}`", "- classes (column order of `p_<class>`): "
             + ", ".join(f"`{c}`" for c in classes),
             "- models: " + ", ".join(f"`{m}`" for m in models),
             f"- rows: {n_samples} samples, {n_predictions} predictions", "",
             "## Runs", "", "| run key | model | prompt | settings |", "|---|---|---|---|"]
    for r in runs:
        settings = json.dumps(r.get("settings", {}), sort_keys=True).replace("|", "\\|")
        lines.append(f"| `{r['run_key']}` | `{r['model']}` | {_prompt_of(r.get('settings', {}))}"
                     f" | `{settings}` |")
    lines += ["", "## Licence notes", "", licence.strip(), "",
              "The answers are derived from the corpus's audio: whoever uses them is bound by "
              "the corpus's licence as well as by each model's terms of use.", "",
              "## Reading it back", "", "```python",
              "from ambiemo.outputs.export import read_export",
              "export = read_export(path)   # .samples, .predictions, .classes, .runs", "```", ""]
    return "\n".join(lines)


def export_run(out: str | Path, *, samples: pd.DataFrame, predictions: pd.DataFrame,
               runs: list[dict], corpus: str, classes, licence: str) -> Path:
    """Write the export folder `out` (replacing an earlier one); returns its path.

    `samples` are sample-store rows with `run_key` and `model` (`SampleStore.read` plus
    the run's model), `predictions` the Predictions table, `runs` one dict per run key
    (`run_key`, `model`, `settings`: the store's record), `licence` the licence notes the
    card carries verbatim.
    """
    import shutil

    import datasets

    classes = list(classes)
    _check(samples, SAMPLE_KEYS, "samples")
    _check(predictions, [*PREDICTION_KEYS, *columns("p", classes)], "predictions")
    keys = {r["run_key"] for r in runs}
    unnamed = sorted(set(samples["run_key"]) - keys)
    if unnamed:
        raise ValueError(f"export_run: samples of run key(s) {unnamed} have no entry in runs")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    samples = samples.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    samples.to_parquet(out / "samples.parquet", index=False)
    predictions.to_parquet(out / "predictions.parquet", index=False)
    datasets.DatasetDict({
        "samples": datasets.Dataset.from_pandas(samples, preserve_index=False),
        "predictions": datasets.Dataset.from_pandas(predictions, preserve_index=False),
    }).save_to_disk(str(out / "dataset"))
    meta = {"corpus": corpus, "classes": classes, "runs": runs,
            "columns": {"samples": list(samples), "predictions": list(predictions)}}
    (out / "ambiemo_export.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    (out / "README.md").write_text(dataset_card(
        corpus=corpus, classes=classes, runs=runs, licence=licence, n_samples=len(samples),
        n_predictions=len(predictions)))
    return out


def read_export(path: str | Path) -> Export:
    """An export folder read back through `datasets.load_from_disk`, columns in the order
    they were written."""
    import datasets

    path = Path(path)
    meta_file = path / "ambiemo_export.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not an ambiemo export: no ambiemo_export.json")
    meta = json.loads(meta_file.read_text())
    dd = datasets.load_from_disk(str(path / "dataset"))
    tables = {name: dd[name].to_pandas()[meta["columns"][name]]
              for name in ("samples", "predictions")}
    return Export(tables["samples"], tables["predictions"], list(meta["classes"]),
                  meta["corpus"], list(meta["runs"]))


def export_from_store(out: str | Path, store, run_keys, predictions: pd.DataFrame, *,
                      corpus: str, classes, licence: str) -> Path:
    """`export_run` of the runs `run_keys` of a `SampleStore` (generation and verifier runs
    alike): their rows as stored (answers not parsed, so the reader parses them with its own
    parser version), model and run key added, settings from the store's record."""
    runs, frames = [], []
    table = store.runs().set_index("run_key")
    for key in run_keys:
        if key not in table.index:
            raise KeyError(f"export_from_store: no run {key!r} in {store.path}; runs: "
                           f"{sorted(table.index)}")
        model = table.loc[key, "model"]
        runs.append({"run_key": key, "model": model, "settings": store.settings(key)})
        rows = store.read(key, parse=False)
        frames.append(rows.assign(run_key=key, model=model))
    samples = pd.concat(frames, ignore_index=True)
    if "dist" in samples:   # label-score distributions: lists, as Parquet keeps them
        samples["dist"] = samples["dist"].map(lambda d: None if d is None else list(d))
    return export_run(out, samples=samples, predictions=predictions, runs=runs, corpus=corpus,
                      classes=classes, licence=licence)


def main(argv=None) -> int:
    """`python -m ambiemo.outputs.export RUN DIR`: a run folder (or its config) as a Hugging
    Face dataset folder, one split per corpus (outputs/study_export.py)."""
    import argparse
    import sys

    from ambiemo.outputs.study_export import DEFAULT_LICENCE, export_study

    ap = argparse.ArgumentParser(
        prog="python -m ambiemo.outputs.export",
        description="Export a run's samples, predictions and human votes as a Hugging Face "
                    "dataset folder: load_dataset(DIR, 'predictions')['<corpus>'].")
    ap.add_argument("run", help="the run folder (runs/<name>) or the study config (YAML)")
    ap.add_argument("out", help="the export folder to write (replaced if it is an export)")
    ap.add_argument("--output-dir", metavar="DIR",
                    help="with a config: the --output-dir the run was made with")
    ap.add_argument("--limit", type=int, metavar="N",
                    help="with a config: the --limit the run was made with")
    ap.add_argument("--licence", default=DEFAULT_LICENCE, help="licence notes for the card")
    args = ap.parse_args(argv)
    run = Path(args.run)
    try:
        if run.suffix in (".yaml", ".yml"):
            from ambiemo.config import load_config, with_run_options
            run = with_run_options(load_config(run), limit=args.limit,
                                   output_dir=args.output_dir).run_dir
        if not run.is_dir():
            raise FileNotFoundError(f"{run}: no such run folder (runs/<name>, or a config)")
        out = export_study(run, args.out, licence=args.licence)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported {run} to {out}: load_dataset({str(out)!r}, 'predictions')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
