"""Gemma-3n (Google) through transformers' own `Gemma3nForConditionalGeneration`.

One of today's open ALMs that this project adds beyond the models Jia et al. (2026)
compare: a USM-based audio encoder feeding a MatFormer decoder. Its processor takes 16 kHz
mono audio (`Gemma3nAudioFeatureExtractor`) and the chat template places the audio as a
`{"type": "audio"}` content part, so the shared base (alm/hf.py) serves it with only the
end-of-turn token and the class named.

Not tested on an offline tiny checkpoint: building the model constructs its vision tower
through `timm`, which needs a working `torchvision`; the package registries this project is
built from have only CUDA builds of torchvision for torch 2.13, which fail on a CPU-only
torch (see README, "Adapters without an offline model test"). Until such a test exists the
adapter samples through transformers' own `generate()` (`default_engine = "generate"`), the
reference path, rather than the shared-prefix engine, whose per-step inputs have not been
checked against Gemma-3n's (it also takes `token_type_ids`).
"""
from __future__ import annotations

from ambiemo.alm.hf import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model


@register_adapter("gemma3n", "Gemma3nAdapter")
class Gemma3nAdapter(TransformersAdapter):
    hf_class = "Gemma3nForConditionalGeneration"
    end_of_turn = "<end_of_turn>"
    default_engine = "generate"

    def audio_window_s(self) -> float | None:
        # The audio encoder is trained on clips up to 30 s; the feature extractor does not
        # cut, so longer clips are counted as over the window by the runner.
        return 30.0


# n_params: the raw parameter counts Google gives for the "effective 2B / 4B" models
# (5.44e9 and 7.85e9, Gemma 3n model cards); the capacity axis uses raw counts throughout.
register_model(ModelSpec(name="gemma-3n-e2b", checkpoint="google/gemma-3n-E2B-it",
                         hf_class="Gemma3nForConditionalGeneration", n_params=5.44e9,
                         adapter="Gemma3nAdapter"))
register_model(ModelSpec(name="gemma-3n-e4b", checkpoint="google/gemma-3n-E4B-it",
                         hf_class="Gemma3nForConditionalGeneration", n_params=7.85e9,
                         adapter="Gemma3nAdapter"))
