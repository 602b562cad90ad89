"""Constrained decoding: generated tokens may only spell one of the class names.

A random-weight test model writes gibberish, and real ALMs sometimes answer off-list; Jia
et al. (2026) parse free text, which this project also does. Constraining the answer to the
label space is the alternative the config can choose: every response then parses, and the
sampled distribution over class names is the model's own, renormalised over the allowed
continuations at each step.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


class ClassNameTrie:
    """Prefix tree over the token sequences of the class names."""

    def __init__(self, sequences: Sequence[Sequence[int]], eos_token_id: int):
        if not sequences:
            raise ValueError("constrained decoding needs at least one class name")
        self.sequences = [tuple(s) for s in sequences]
        self.eos = eos_token_id

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        prefix = tuple(prefix)
        if prefix and prefix[-1] == self.eos:
            return [self.eos]  # finished rows keep being padded by generate()
        k = len(prefix)
        nxt = {s[k] for s in self.sequences if len(s) > k and s[:k] == prefix}
        if prefix in self.sequences:
            nxt.add(self.eos)
        # Unreachable when every token came from this function; ending is the safe answer.
        return sorted(nxt) or [self.eos]


def class_name_trie(tokenizer, classes: Sequence[str], eos_token_id: int) -> ClassNameTrie:
    """Trie of each class name as the answer text (lower case, no leading space)."""
    seqs = [tokenizer.encode(c, add_special_tokens=False) for c in classes]
    return ClassNameTrie(seqs, eos_token_id)


def prefix_allowed_tokens_fn(trie: ClassNameTrie, prompt_len: int) -> Callable:
    """The callback `generate(prefix_allowed_tokens_fn=...)` takes. With left padding every
    row's prompt has the same length, so the answer so far is `input_ids[prompt_len:]`."""
    def fn(batch_id, input_ids):
        return trie.allowed(input_ids[prompt_len:].tolist())
    return fn
