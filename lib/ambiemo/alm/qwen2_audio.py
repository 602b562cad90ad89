"""Qwen2-Audio through transformers' own classes (`Qwen2AudioForConditionalGeneration`).

Qwen2-Audio-7B-Instruct is the main open model of Jia et al. (2026). The adapter samples N
responses per clip with their sequence log-likelihoods (what Best-of-N and weighted BoN
rank by). `engine="prefix"` (the default) encodes and prefills each clip once and decodes
the N samples from the shared prefix (alm/engine.py); `engine="generate"` makes batched
`generate(num_return_sequences=N)` calls, kept as the reference the engine is tested
against. The same code loads the real checkpoint and the tiny one built by
`ambiemo.alm.tiny`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ambiemo.alm import engine as prefix_engine
from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.base import ALMAdapter, Clip, Decoding, Generation
from ambiemo.alm.constrained import class_name_trie, prefix_allowed_tokens_fn
from ambiemo.alm.registry import register_adapter


def local_fingerprint(path: Path) -> str:
    """Stands in for a hub revision for a local checkpoint: config plus weight file sizes."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "local-" + h.hexdigest()[:16]


def resolve_device(device: str) -> str:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


ENGINES = ("prefix", "generate")


@register_adapter("qwen2_audio", "Qwen2AudioAdapter")
class Qwen2AudioAdapter(ALMAdapter):
    def __init__(self, checkpoint: str | Path, *, name: str, revision: str | None = None,
                 device: str = "auto", dtype: str | None = None, engine: str = "prefix"):
        import torch
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.name = name
        self.engine = engine
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device)
        torch_dtype = getattr(torch, dtype) if dtype else (
            torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        processor = AutoProcessor.from_pretrained(self.checkpoint, revision=revision)
        model = Qwen2AudioForConditionalGeneration.from_pretrained(
            self.checkpoint, revision=revision, dtype=torch_dtype)
        path = Path(self.checkpoint)
        self._attach(model, processor, revision or (
            local_fingerprint(path) if path.is_dir() else getattr(model.config, "_commit_hash", None)))

    @classmethod
    def from_parts(cls, model, processor, *, name: str, device: str = "auto",
                   engine: str = "prefix") -> "Qwen2AudioAdapter":
        """An adapter around a model already in memory (the benchmarks' random-weight
        7B-shaped model, which is never saved); its revision is `in-memory`."""
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self = cls.__new__(cls)
        self.name, self.engine, self.checkpoint = name, engine, f"in-memory:{name}"
        self.device = resolve_device(device)
        self._attach(model, processor, "in-memory")
        return self

    def _attach(self, model, processor, revision):
        self.processor = processor
        # Decoder-only batching needs left padding; released checkpoints default to right.
        self.processor.tokenizer.padding_side = "left"
        self.model = model.to(self.device).eval()
        # The Whisper feature extractor pads or truncates every clip to this window.
        self.max_audio_s = float(self.processor.feature_extractor.chunk_length)
        self.revision = revision
        tok = self.processor.tokenizer
        self.eos_id = tok.convert_tokens_to_ids("<|im_end|>")
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = sorted({self.eos_id, *(eos if isinstance(eos, list) else [eos] if eos is not None else [])})
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_id

    def identity(self) -> dict:
        # The engine enters the run key: in bf16 on a GPU the two paths agree in
        # distribution, not bit for bit, so their samples are never mixed in one run.
        return {"model": self.name, "checkpoint": self.checkpoint, "revision": self.revision,
                "dtype": str(self.model.dtype).removeprefix("torch."), "engine": self.engine}

    def build_prompt(self, user_text: str) -> str:
        messages = [{"role": "user", "content": [{"type": "audio"},
                                                 {"type": "text", "text": user_text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def _inputs(self, clips: Sequence[Clip], user_text: str):
        prompt = self.build_prompt(user_text)
        return self.processor(text=[prompt] * len(clips), audio=[c.audio for c in clips],
                              sampling_rate=TARGET_SR, return_tensors="pt",
                              padding=True).to(self.device)

    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int,
                 min_new_tokens: int = 0) -> list[Generation]:
        """`min_new_tokens` (not a study setting) forces responses of an exact length for
        the benchmarks; the study leaves it at 0."""
        import torch

        if greedy and n != 1:
            raise ValueError("greedy decoding gives one response per clip; n must be 1")
        inputs = self._inputs(clips, user_text)
        prompt_len = inputs["input_ids"].shape[1]
        trie = (class_name_trie(self.processor.tokenizer, classes, self.eos_id)
                if decoding.constrained else None)
        torch.manual_seed(seed)
        if self.engine == "prefix":
            prefix = prefix_engine.prefill(self.model, inputs)
            tokens, logp = prefix_engine.decode(
                self.model, prefix, n=n, greedy=greedy, max_new_tokens=decoding.max_new_tokens,
                stop_ids=self.stop_ids, pad_id=self.pad_id, temperature=decoding.temperature,
                top_k=decoding.top_k, top_p=decoding.top_p,
                allowed=trie.allowed if trie else None, min_new_tokens=min_new_tokens)
            return self._to_generations(clips, n, tokens, logp)
        kwargs = dict(max_new_tokens=decoding.max_new_tokens, num_return_sequences=n,
                      return_dict_in_generate=True, output_logits=True,
                      pad_token_id=self.pad_id, eos_token_id=self.stop_ids)
        if min_new_tokens:
            kwargs["min_new_tokens"] = min_new_tokens
        if greedy:
            kwargs.update(do_sample=False)
        else:
            # top_k=0 is passed explicitly: None would fall back to the checkpoint's default.
            kwargs.update(do_sample=True, temperature=decoding.temperature,
                          top_p=decoding.top_p, top_k=decoding.top_k)
        if trie:
            kwargs["prefix_allowed_tokens_fn"] = prefix_allowed_tokens_fn(trie, prompt_len)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        tokens = out.sequences[:, prompt_len:]
        # Log-likelihood under the raw (temperature 1, unconstrained) logits: the model's own
        # probability of the text, which is what Best-of-N ranks by.
        logp = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)
        return self._to_generations(clips, n, tokens, logp.gather(-1, tokens[..., None]).squeeze(-1))

    def label_scores(self, clips: Sequence[Clip], user_text: str,
                     classes: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """One prefill per batch, then every class name (+ end of turn) teacher-forced from
        the prefix in one forward; the probabilities are renormalised over the classes."""
        import torch

        tok = self.processor.tokenizer
        seqs = [tok.encode(c, add_special_tokens=False) + [self.eos_id] for c in classes]
        prefix = prefix_engine.prefill(self.model, self._inputs(clips, user_text))
        logp = prefix_engine.teacher_force(self.model, prefix, seqs)
        probs = torch.softmax(logp, dim=-1).cpu().numpy().astype(np.float64)
        return [(c.utt_id, p / p.sum()) for c, p in zip(clips, probs)]

    def _to_generations(self, clips, n, tokens, token_logp) -> list[Generation]:
        import torch

        is_stop = torch.isin(tokens, torch.tensor(self.stop_ids, device=tokens.device))
        # Count tokens up to and including the first stop token; later ones are padding.
        valid = (torch.cumsum(is_stop, dim=1) - is_stop.long()) == 0
        n_tokens = valid.sum(dim=1).tolist()
        seq_logp = (token_logp * valid).sum(dim=1).tolist()
        texts = self.processor.tokenizer.batch_decode(
            [t[v].tolist() for t, v in zip(tokens, valid)], skip_special_tokens=True)
        out = []
        for row, (text, lp, nt) in enumerate(zip(texts, seq_logp, n_tokens)):
            out.append(Generation(utt_id=clips[row // n].utt_id, idx=row % n,
                                  text=text.strip(), logprob=float(lp), n_tokens=int(nt)))
        return out
