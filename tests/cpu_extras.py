"""Make the CPU test extras importable: torchvision's and torchaudio's Python code, without
their CUDA-linked compiled ops (scripts/setup.sh installs them into .venv/cpu-extras).

Why: the tiny checkpoints of Qwen2.5-Omni, Qwen3-Omni, Phi-4-multimodal, Gemma-3n and
Granite-Speech must go through their real processor classes, which import torchvision
(image/video processors, timm) or torchaudio (mel features). Only the pure-Python transforms
run; nothing in an audio processor calls a compiled torchvision op.

torchaudio imports cleanly without its extension (it checks for the library file).
torchvision registers fake kernels for `torchvision::nms` and `::qnms` without checking that
its extension loaded, so their schemas are declared here first; calling either op still
fails ("no kernel"), as an op without a kernel should. Must run before transformers is
imported: transformers decides at import whether torchvision is available.
"""
from __future__ import annotations

import sys
from pathlib import Path

EXTRAS = Path(__file__).resolve().parents[1] / ".venv" / "cpu-extras"


def install() -> bool:
    """Put .venv/cpu-extras on sys.path (if present); True when torchvision imports."""
    if "torchvision" in sys.modules:
        return True
    if not EXTRAS.is_dir():
        return False
    if str(EXTRAS) not in sys.path:
        sys.path.append(str(EXTRAS))   # after site-packages: a real install wins
    import importlib.util

    import torch
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and Path(spec.origin).is_relative_to(EXTRAS):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBS.append(lib)   # a Library deregisters its definitions when collected
    import torchvision  # noqa: F401
    return True


_LIBS: list = []
