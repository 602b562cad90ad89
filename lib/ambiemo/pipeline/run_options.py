"""The command line's run options (`--limit N`, `--output-dir DIR`) on their way to the
notebooks, and the check that a limited run never mixes with a full one.

The options are not part of the study config (they change how much of it runs and where it
is written, not what it is), so the driver hands them to each notebook's kernel through one
environment variable, as it does for progress and `--retry-failed`; `stages.load` applies
them. `--limit N` keeps the first N clips of each corpus (as lm-evaluation-harness's
`--limit` takes the first N documents), taken in turn from each speaker (`limited_order`):
a stable choice, the same on every machine. A limited run is a run of its own
(`runs/<name>__limit<N>/`, `StudyConfig.run_name`): its batches are seeded by their first
clip, so a full run reusing them would differ from an uninterrupted one. The Manifest
records the limit (`attrs["limit"]`), and every stage that reads a Manifest refuses one
prepared with another limit, naming both and the fix.
"""
from __future__ import annotations

import json
import os

import pandas as pd

from ambiemo.config import StudyConfig, with_run_options

ENV = "AMBIEMO_RUN_OPTIONS"


def export(cfg: StudyConfig) -> None:
    """Put `cfg`'s run options where the notebook kernels (children) will find them."""
    if cfg.limit is None and cfg.output_dir is None:
        os.environ.pop(ENV, None)
        return
    os.environ[ENV] = json.dumps({"limit": cfg.limit, "output_dir":
                                  None if cfg.output_dir is None else str(cfg.output_dir)})


def apply(cfg: StudyConfig) -> StudyConfig:
    """`cfg` with the run options the driver exported (none: `cfg` as it is)."""
    text = os.environ.get(ENV)
    if not text:
        return cfg
    options = json.loads(text)
    return with_run_options(cfg, limit=options.get("limit"), output_dir=options.get("output_dir"))


def limited_order(manifest: pd.DataFrame) -> list[int]:
    """The Manifest's rows in the order `--limit` takes them: each speaker's first clip (the
    speakers in order of first appearance), then each one's second, and so on. Stable (the
    loader's order decides), and a limited run has as many speakers as it can: a corpus
    listed speaker by speaker (CREMA-D: 82 clips of actor 1001 first) would otherwise give
    one speaker, and the cross-fitted controls, the speaker-clustered intervals and the
    cross-fitted reference need several."""
    speaker = manifest["speaker"].astype(object).where(manifest["speaker"].notna(),
                                                       manifest["utt_id"])
    turn = speaker.groupby(speaker, sort=False).cumcount()
    first_seen = pd.Series(pd.factorize(speaker)[0], index=manifest.index)
    order = pd.DataFrame({"turn": turn, "speaker": first_seen, "row": range(len(manifest))})
    return order.sort_values(["turn", "speaker", "row"])["row"].tolist()


def limit_manifest(manifest: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The first `limit` clips of `manifest` in `limited_order` (kept in the Manifest's
    order), all of them for None; the limit and the corpus's size go to its attrs."""
    attrs = dict(manifest.attrs)
    out = manifest
    if limit is not None:
        rows = sorted(limited_order(manifest)[:limit])
        out = manifest.iloc[rows].reset_index(drop=True)
    out.attrs = attrs | {"limit": limit, "clips_before_limit": len(manifest)}
    return out


def limit_problem(attrs: dict, cfg: StudyConfig, path) -> str | None:
    """Why the Manifest at `path` (its `attrs`) cannot serve a run with `cfg.limit`, or None."""
    had = attrs.get("limit")
    if had == cfg.limit:
        return None

    def what(n):
        return "all clips (no --limit)" if n is None else f"--limit {n} (the first {n} clips)"
    rerun = "without --limit" if had is None else f"with --limit {had}"
    return (f"{path} was prepared with {what(had)}, but this run asks for {what(cfg.limit)}: "
            f"a limited run never mixes with a full one. Rerun {rerun}, or prepare the corpus "
            "again with this run's options (--stage prepare)")
