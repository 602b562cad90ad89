"""Phi-4-multimodal (Microsoft) through transformers' own `Phi4MultimodalForCausalLM`.

One of today's open ALMs that this project adds beyond the models Jia et al. (2026)
compare. The transformers-native checkpoint's processor takes 16 kHz mono audio and expands
the `<|audio|>` placeholder its chat template writes for an `{"type": "audio"}` content
part; the answer ends with `<|end|>`.

Not tested on an offline tiny checkpoint: the processor's image processor requires
`torchvision`, and the package registries this project is built from have only CUDA builds
of torchvision for torch 2.13, which fail on a CPU-only torch (see README, "Adapters without
an offline model test"). Until such a test exists the adapter samples through transformers'
own `generate()` (`default_engine = "generate"`), the reference path.
"""
from __future__ import annotations

from ambiemo.alm.hf import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model


@register_adapter("phi4_multimodal", "Phi4MultimodalAdapter")
class Phi4MultimodalAdapter(TransformersAdapter):
    hf_class = "Phi4MultimodalForCausalLM"
    end_of_turn = "<|end|>"
    default_engine = "generate"

    def audio_window_s(self) -> float | None:
        # The speech encoder was trained on up to 40 s per clip (model card); the processor
        # does not cut, so longer clips are counted as over the window by the runner.
        return 40.0


# n_params: 5.6e9, Microsoft's Phi-4-multimodal-instruct model card.
register_model(ModelSpec(name="phi-4-multimodal", checkpoint="microsoft/Phi-4-multimodal-instruct",
                         hf_class="Phi4MultimodalForCausalLM", n_params=5.6e9,
                         adapter="Phi4MultimodalAdapter"))
