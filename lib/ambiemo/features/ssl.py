"""Self-supervised speech-encoder features (WavLM), for the optional `wavlm_soft` reference.

The second feature set of issue #17: the time-mean of one hidden layer of a pretrained speech
encoder, loaded through transformers. WavLM Base+ (Chen et al., 2022, IEEE JSTSP 16(6),
"WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack Speech Processing") is the
default; which layer is pooled is a setting (it enters the cache key and the Predictions'
`params`). Encoders are registered like the ALMs (alm/registry.py): a name, a checkpoint
(a hub id, or "tiny:wavlm" for a random-weight WavLM built offline by `build_tiny_wavlm`, the
same architecture at toy size, so the path is tested without a download) and a default layer.
Extraction, failure rows and the cache are features/cache.py's.

    feats = extract_ssl(manifest, "runs/extended/features/crema_d__wavlm.parquet",
                        encoder="wavlm-base-plus")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.alm.tiny import register_tiny
from ambiemo.features.cache import extract_features

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class EncoderSpec:
    name: str                  # registry name, as written in configs
    checkpoint: str            # hub id, or "tiny:<arch>" for a locally built tiny encoder
    layer: int                 # hidden_states index pooled by default (0: the CNN features)
    revision: str | None = None

    def __post_init__(self):
        if self.layer < 0:
            raise ValueError(f"encoder {self.name!r}: layer must be >= 0, got {self.layer}")


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    if spec.name in ENCODERS:
        raise ValueError(f"encoder {spec.name!r} is registered twice")
    ENCODERS[spec.name] = spec
    return spec


def get_encoder(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; valid: {sorted(ENCODERS)}") from None


# Layer 8 of 12: an upper-middle layer; probing studies of base-size SSL encoders find
# paralinguistic (speaker, emotion) information there rather than in the last, more phonetic,
# layers. A config can name another (`layer:`); it is part of the cache key.
register_encoder(EncoderSpec("wavlm-base-plus", "microsoft/wavlm-base-plus", layer=8))
register_encoder(EncoderSpec("tiny-wavlm", "tiny:wavlm", layer=1))


@register_tiny("wavlm", version=1)
def build_tiny_wavlm(path: str | Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide WavLM with random (seeded) weights and the real feature extractor."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    path = Path(path)
    config = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(32, 32, 32),
                         conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         num_buckets=32, max_bucket_distance=64)
    torch.manual_seed(seed)
    WavLMModel(config).eval().save_pretrained(path)
    # WavLM Base+'s processor settings: 16 kHz, zero-mean unit-variance input, no mask.
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                             do_normalize=True, return_attention_mask=False
                             ).save_pretrained(path)
    return path


class SslExtractor:
    """Mean over time of hidden_states[layer] of a transformers speech encoder (lazy load)."""

    def __init__(self, checkpoint: str | Path, *, layer: int, name: str,
                 revision: str | None = None, device: str = "cpu"):
        import transformers

        self.checkpoint, self.layer, self.revision, self.device = (str(checkpoint), layer,
                                                                   revision, device)
        self.settings = {"extractor": "transformers", "version": transformers.__version__,
                         "encoder": name, "checkpoint": self.checkpoint, "revision": revision,
                         "layer": layer, "pooling": "mean", "sample_rate": SAMPLE_RATE}
        self._model = self._processor = None

    def __getstate__(self):
        return {**self.__dict__, "_model": None, "_processor": None}

    def _load(self):
        if self._model is None:
            from transformers import AutoFeatureExtractor, AutoModel

            self._processor = AutoFeatureExtractor.from_pretrained(self.checkpoint,
                                                                   revision=self.revision)
            self._model = AutoModel.from_pretrained(self.checkpoint, revision=self.revision
                                                    ).to(self.device).eval()
            n_layers = self._model.config.num_hidden_layers
            if self.layer > n_layers:
                raise ValueError(f"{self.checkpoint}: layer {self.layer} does not exist "
                                 f"(hidden_states 0..{n_layers})")
        return self._model, self._processor

    def columns(self) -> list[str]:
        model, _ = self._load()
        return [f"L{self.layer}_{j}" for j in range(model.config.hidden_size)]

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        import torch

        model, processor = self._load()
        inputs = processor(audio, sampling_rate=sr, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = model(**inputs, output_hidden_states=True).hidden_states[self.layer]
        return hidden[0].float().mean(dim=0).cpu().numpy()


def extract_ssl(manifest: pd.DataFrame, cache_path: str | Path | None, *,
                encoder: str = "wavlm-base-plus", layer: int | None = None,
                checkpoint: str | Path | None = None, n_jobs: int = 1,
                executor: str = "process", progress: bool = True, device: str = "cpu",
                cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Pooled encoder features per Manifest clip (features_cache.extract_features' columns).

    `encoder` names an `ENCODERS` entry; `layer` overrides its default layer, `checkpoint` its
    checkpoint (a local copy); `cache_dir` is where a tiny checkpoint is built.
    """
    from ambiemo.alm import ensure_tiny

    spec = get_encoder(encoder)
    path: str | Path = checkpoint or spec.checkpoint
    if str(path).startswith("tiny:"):
        path = ensure_tiny(str(path).removeprefix("tiny:"), Path(cache_dir) if cache_dir else None)
    extractor = SslExtractor(path, layer=spec.layer if layer is None else layer,
                             name=spec.name, revision=spec.revision, device=device)
    if str(spec.checkpoint).startswith("tiny:") and checkpoint is None:
        # The build folder differs per machine; the tiny build version is what identifies it.
        extractor.settings["checkpoint"] = spec.checkpoint
    return extract_features(manifest, cache_path, extractor, n_jobs=n_jobs, executor=executor,
                            progress=progress, desc=spec.name)
