"""eGeMAPS v02 functionals (88 features per clip) from openSMILE, for the `egemaps_soft` reference.

The extended Geneva Minimalistic Acoustic Parameter Set (Eyben et al., 2016, IEEE Trans.
Affective Computing 7(2)) is the standard small hand-crafted feature set for speech emotion:
pitch, loudness, spectral balance, formants, jitter/shimmer and rate, summarised over the
clip. The `opensmile` Python package (pinned in pyproject.toml) ships its own SMILExtract
binary, so the numbers do not depend on a system install. Extraction, parallelism, failure
rows and the Parquet cache are features/cache.py's; this module only names the feature set.

    feats = extract_egemaps(manifest, "runs/smoke/features/demo__egemaps.parquet", n_jobs=2)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.features.cache import extract_features

SAMPLE_RATE = 16_000
N_EGEMAPS = 88


class EgemapsExtractor:
    """openSMILE eGeMAPSv02 functionals of a 16 kHz mono clip; builds its Smile lazily, once
    per process (a Smile object does not pickle, the extractor is sent to workers)."""

    def __init__(self):
        import opensmile

        self.settings = {"extractor": "opensmile", "version": opensmile.__version__,
                         "feature_set": "eGeMAPSv02", "feature_level": "Functionals",
                         "sample_rate": SAMPLE_RATE}
        self._smile = None

    def __getstate__(self):
        return {"settings": self.settings, "_smile": None}

    def _get(self):
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)
        return self._smile

    def columns(self) -> list[str]:
        names = list(self._get().feature_names)
        if len(names) != N_EGEMAPS:
            raise RuntimeError(f"openSMILE eGeMAPSv02 gave {len(names)} features, not 88")
        return names

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        out = self._get().process_signal(audio, sr)
        return out.to_numpy(dtype=float).reshape(-1)


def extract_egemaps(manifest: pd.DataFrame, cache_path: str | Path | None, *, n_jobs: int = 1,
                    executor: str = "process", progress: bool = True) -> pd.DataFrame:
    """eGeMAPS v02 functionals per Manifest clip, cached at `cache_path` (see
    `features_cache.extract_features` for the columns, failure rows and cache rules)."""
    return extract_features(manifest, cache_path, EgemapsExtractor(), n_jobs=n_jobs,
                            executor=executor, progress=progress, desc="eGeMAPS")
