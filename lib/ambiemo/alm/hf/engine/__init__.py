"""The shared-prefix decoding engine for transformers ALMs (see `decode` for the design).

`decode` samples and decodes greedily from one prefill, `beam` is generate()'s beam search
from the same prefill, `continuations` holds the prefix and the decoding cache, `shared`
the shared-prefix attention that lets N rows read one copy of a clip's prompt cache.
"""
from ambiemo.alm.hf.engine.continuations import SHARING, Prefix  # noqa: F401
from ambiemo.alm.hf.engine.decode import decode, prefill, teacher_force, warpers  # noqa: F401
from ambiemo.alm.hf.engine.beam import beam_search  # noqa: F401
