"""Qwen2-Audio through transformers' own classes (`Qwen2AudioForConditionalGeneration`).

Qwen2-Audio-7B-Instruct is the main open model of Jia et al. (2026). The adapter samples N
responses per clip with their sequence log-likelihoods (what Best-of-N and weighted BoN
rank by) in batched `generate()` calls; the faster shared-prefix engine is a separate
concern (issue "fast sampling engine"). The same code loads the real checkpoint and the
tiny one built by `ambiemo.alm.tiny`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

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


@register_adapter("qwen2_audio", "Qwen2AudioAdapter")
class Qwen2AudioAdapter(ALMAdapter):
    def __init__(self, checkpoint: str | Path, *, name: str, revision: str | None = None,
                 device: str = "auto", dtype: str | None = None):
        import torch
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        self.name = name
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device)
        torch_dtype = getattr(torch, dtype) if dtype else (
            torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        self.processor = AutoProcessor.from_pretrained(self.checkpoint, revision=revision)
        # Decoder-only batching needs left padding; released checkpoints default to right.
        self.processor.tokenizer.padding_side = "left"
        self.model = Qwen2AudioForConditionalGeneration.from_pretrained(
            self.checkpoint, revision=revision, dtype=torch_dtype).to(self.device).eval()
        # The Whisper feature extractor pads or truncates every clip to this window.
        self.max_audio_s = float(self.processor.feature_extractor.chunk_length)
        path = Path(self.checkpoint)
        self.revision = revision or (local_fingerprint(path) if path.is_dir() else
                                     getattr(self.model.config, "_commit_hash", None))
        tok = self.processor.tokenizer
        self.eos_id = tok.convert_tokens_to_ids("<|im_end|>")
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = sorted({self.eos_id, *(eos if isinstance(eos, list) else [eos] if eos is not None else [])})
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_id

    def identity(self) -> dict:
        return {"model": self.name, "checkpoint": self.checkpoint, "revision": self.revision,
                "dtype": str(self.model.dtype).removeprefix("torch.")}

    def build_prompt(self, user_text: str) -> str:
        messages = [{"role": "user", "content": [{"type": "audio"},
                                                 {"type": "text", "text": user_text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int) -> list[Generation]:
        import torch

        if greedy and n != 1:
            raise ValueError("greedy decoding gives one response per clip; n must be 1")
        prompt = self.build_prompt(user_text)
        inputs = self.processor(text=[prompt] * len(clips), audio=[c.audio for c in clips],
                                sampling_rate=TARGET_SR, return_tensors="pt",
                                padding=True).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        kwargs = dict(max_new_tokens=decoding.max_new_tokens, num_return_sequences=n,
                      return_dict_in_generate=True, output_logits=True,
                      pad_token_id=self.pad_id, eos_token_id=self.stop_ids)
        if greedy:
            kwargs.update(do_sample=False)
        else:
            # top_k=0 is passed explicitly: None would fall back to the checkpoint's default.
            kwargs.update(do_sample=True, temperature=decoding.temperature,
                          top_p=decoding.top_p, top_k=decoding.top_k)
        if decoding.constrained:
            trie = class_name_trie(self.processor.tokenizer, classes, self.eos_id)
            kwargs["prefix_allowed_tokens_fn"] = prefix_allowed_tokens_fn(trie, prompt_len)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        return self._to_generations(clips, n, out.sequences[:, prompt_len:], out.logits)

    def _to_generations(self, clips, n, tokens, logits) -> list[Generation]:
        import torch

        # Log-likelihood under the raw (temperature 1, unconstrained) logits: the model's own
        # probability of the text, which is what Best-of-N ranks by.
        logp = torch.log_softmax(torch.stack(logits, dim=1).float(), dim=-1)
        logp = logp.gather(-1, tokens[..., None]).squeeze(-1)
        is_stop = torch.isin(tokens, torch.tensor(self.stop_ids, device=tokens.device))
        # Count tokens up to and including the first stop token; later ones are padding.
        valid = (torch.cumsum(is_stop, dim=1) - is_stop.long()) == 0
        n_tokens = valid.sum(dim=1).tolist()
        seq_logp = (logp * valid).sum(dim=1).tolist()
        texts = self.processor.tokenizer.batch_decode(
            [t[v].tolist() for t, v in zip(tokens, valid)], skip_special_tokens=True)
        out = []
        for row, (text, lp, nt) in enumerate(zip(texts, seq_logp, n_tokens)):
            out.append(Generation(utt_id=clips[row // n].utt_id, idx=row % n,
                                  text=text.strip(), logprob=float(lp), n_tokens=int(nt)))
        return out
