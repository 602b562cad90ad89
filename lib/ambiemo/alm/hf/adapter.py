"""The adapter base for every ALM that transformers implements with its own classes.

Jia et al. (2026) run their open ALMs (Qwen2-Audio, Qwen2.5-Omni, Audio Flamingo, ...)
locally and combine N sampled answers per clip. Everything such a model needs beyond its
class, its processor call and its chat template is the same, so it lives here once:

- `generate`: N samples (or one greedy answer) per clip with their log-likelihoods, through
  the shared-prefix engine (alm/hf/engine/decode.py: audio encoded and prompt prefilled once per clip)
  or, with `engine="generate"`, through batched `generate(num_return_sequences=N)` calls;
- `beam`: B beam-search candidates per clip with the same log-likelihood definition;
- `label_scores`: the probability of each class name as the whole answer, teacher-forced
  from one prefill (the `label_logits` strategy);
- `verify`: the model as a judge (ALM-v): the verifier prompt is prefilled up to the
  candidate answer once per clip, every candidate answer plus the rest of the prompt and
  "Yes" / "No" is teacher-forced from that prefix, and the score is P(Yes) renormalised
  over {Yes, No}.

A subclass names the transformers class (`hf_class`), the end-of-turn token, and overrides
`messages` / `processor_inputs` where its processor differs. The same code loads a hub
checkpoint and the tiny offline one built by `ambiemo.alm.tiny`.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ambiemo.alm.hf import engine as prefix_engine
from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.base import ALMAdapter, Clip, Decoding, Generation, Verdict
from ambiemo.alm.hf.constrained import class_name_trie, prefix_allowed_tokens_fn

ENGINES = ("prefix", "generate")
_FULL_COMMIT = re.compile(r"[0-9a-f]{40}$")   # the only revision that pins remote code
# Marks where the candidate answer goes in a verifier prompt, so the chat-formatted prompt
# can be split into the shared prefix and the per-candidate rest. Never produced by a model.
ANSWER_SLOT = "\x00ANSWER\x00"


def local_fingerprint(path: Path) -> str:
    """Stands in for a hub revision for a local checkpoint: config plus weight file sizes."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "local-" + h.hexdigest()[:16]


def _digest(audio: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest()


def resolve_device(device: str) -> str:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TransformersAdapter(ALMAdapter):
    """An ALM loaded with `<hf_class>.from_pretrained` and its `AutoProcessor`."""

    hf_class: str = ""             # transformers class name, e.g. "Qwen2AudioForConditionalGeneration"
    end_of_turn: str = ""          # the token that ends the assistant's answer
    trust_remote_code: bool = False
    default_engine: str = "prefix"
    # Prefix-engine decoding on a GPU (engine.decode): a preallocated per-sample cache and a
    # torch.compile'd step. Both need a shareable prompt cache; off by default.
    static_cache: bool = False
    compile: bool = False
    # Reuse a batch's prefill across calls with the same clips and prompt (`_prefill`);
    # the benchmarks switch it off to time each method cold.
    reuse_prefill: bool = True

    def __init__(self, checkpoint: str | Path, *, name: str, revision: str | None = None,
                 device: str = "auto", dtype: str | None = None, engine: str | None = None,
                 trust_remote_code: bool | None = None, static_cache: bool = False,
                 compile: bool = False):
        import torch
        import transformers
        from transformers import AutoProcessor

        remote = self.trust_remote_code if trust_remote_code is None else trust_remote_code
        if remote and not revision:
            # Remote code runs on this machine: an unpinned revision could change under us.
            raise ValueError(f"model {name!r} needs trust_remote_code; pin a `revision`")
        if remote and not Path(checkpoint).is_dir() and not _FULL_COMMIT.match(str(revision)):
            # A branch, tag or short hash can name other code tomorrow (issue #25).
            raise ValueError(f"model {name!r} needs trust_remote_code, and revision "
                             f"{revision!r} is not a full commit hash (40 hex digits): a "
                             "branch or tag can point at other code tomorrow")
        self.name = name
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device)
        self.static_cache, self.compile = bool(static_cache), bool(compile)
        torch_dtype = getattr(torch, dtype) if dtype else (
            torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        processor = AutoProcessor.from_pretrained(self.checkpoint, revision=revision,
                                                  trust_remote_code=remote)
        cls = getattr(transformers, self.hf_class) if hasattr(transformers, self.hf_class) \
            else transformers.AutoModelForCausalLM
        model = cls.from_pretrained(self.checkpoint, revision=revision, dtype=torch_dtype,
                                    trust_remote_code=remote)
        path = Path(self.checkpoint)
        self._attach(model, processor, engine, revision or (
            local_fingerprint(path) if path.is_dir() else getattr(model.config, "_commit_hash", None)))

    @classmethod
    def from_parts(cls, model, processor, *, name: str, device: str = "auto",
                   engine: str | None = None):
        """An adapter around a model already in memory (the benchmarks' random-weight
        7B-shaped model, which is never saved); its revision is `in-memory`."""
        self = cls.__new__(cls)
        self.name, self.checkpoint = name, f"in-memory:{name}"
        self.device = resolve_device(device)
        self._attach(model, processor, engine, "in-memory")
        return self

    def _attach(self, model, processor, engine, revision):
        engine = engine or self.default_engine
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if (self.static_cache or self.compile) and engine != "prefix":
            raise ValueError(f"{self.name}: static_cache / compile are options of the prefix "
                             f"engine, not of engine={engine!r}")
        self.engine = engine
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        # Decoder-only batching needs left padding; released checkpoints often default to right.
        self.tokenizer.padding_side = "left"
        self.model = model.to(self.device).eval()
        self.max_audio_s = self.audio_window_s()
        self.revision = revision
        self.eos_id = self.tokenizer.convert_tokens_to_ids(self.end_of_turn)
        # An absent token converts to the unknown id -- unless end of turn *is* the unknown
        # token, as in Granite's tokenizer (<|end_of_text|> is unk, bos, eos and pad there).
        if self.eos_id is None or (self.eos_id == self.tokenizer.unk_token_id
                                   and self.end_of_turn != self.tokenizer.unk_token):
            raise ValueError(f"{self.checkpoint}: end-of-turn token {self.end_of_turn!r} "
                             "is not in the tokenizer's vocabulary")
        eos = self.model.generation_config.eos_token_id
        extra = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.stop_ids = sorted({self.eos_id, *extra})
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.eos_id

    # -- what subclasses may override ------------------------------------------------------
    @classmethod
    def required_packages(cls, checkpoint: str, options: dict) -> dict[str, str]:
        """Python packages beyond the pinned core that loading `checkpoint` with `options`
        needs: {import name: what it is for and how to install it}. The pipeline's checks
        (ambiemo.pipeline.preflight) name a missing one before anything runs."""
        return {}

    def audio_window_s(self) -> float | None:
        """Longest audio the processor keeps (longer clips are truncated); None: no limit."""
        fe = getattr(self.processor, "feature_extractor", None)
        chunk = getattr(fe, "chunk_length", None)
        return float(chunk) if chunk else None

    def messages(self, user_text: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "audio"},
                                             {"type": "text", "text": user_text}]}]

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        return self.processor(text=prompts, audio=audios, sampling_rate=TARGET_SR,
                              return_tensors="pt", padding=True)

    # -- the adapter interface -------------------------------------------------------------
    def identity(self) -> dict:
        # The engine enters the run key: in bf16 on a GPU the two paths agree in
        # distribution, not bit for bit, so their samples are never mixed in one run.
        # A compiled step may round differently, so it enters the key too (only when on, so
        # keys of runs without it are unchanged).
        fast = {k: True for k in ("static_cache", "compile") if getattr(self, k)}
        return {"model": self.name, "checkpoint": self.checkpoint, "revision": self.revision,
                "dtype": str(self.model.dtype).removeprefix("torch."), "engine": self.engine,
                **fast}

    def build_prompt(self, user_text: str) -> str:
        return self.processor.apply_chat_template(self.messages(user_text),
                                                  add_generation_prompt=True, tokenize=False)

    def _inputs(self, clips: Sequence[Clip], user_text: str):
        """Model inputs for the clips under one instruction (chat-formatted here)."""
        return self._formatted_inputs(clips, self.build_prompt(user_text))

    def _formatted_inputs(self, clips: Sequence[Clip], prompt: str):
        return self.processor_inputs([prompt] * len(clips), [c.audio for c in clips]).to(self.device)

    def _prefill(self, clips: Sequence[Clip], text: str, *, formatted: bool = False):
        """The prefix engine's prefill of `clips` under `text` (an instruction, or with
        `formatted` an already chat-formatted prompt), reused by the next call with the same
        clips and text while decoding has only read it: within a runner batch greedy, sample,
        beam and label scores share one prompt, so the audio is encoded once for all four."""
        key = (formatted, text, tuple((c.utt_id, _digest(c.audio)) for c in clips))
        memo, self._prefix_memo = getattr(self, "_prefix_memo", None), None
        if self.reuse_prefill and memo is not None and memo[0] == key and not memo[1].consumed:
            self._prefix_memo = memo
            return memo[1]
        del memo    # free the last batch's cache before this one is computed
        inputs = self._formatted_inputs(clips, text) if formatted else self._inputs(clips, text)
        prefix = prefix_engine.prefill(self.model, inputs)
        self._prefix_memo = (key, prefix)
        return prefix

    def forget_prefill(self) -> None:
        """Drop the kept prefill (its cache memory is freed; the next call prefills anew)."""
        self._prefix_memo = None

    def _trie(self, decoding: Decoding, classes: Sequence[str]):
        return class_name_trie(self.tokenizer, classes, self.eos_id) if decoding.constrained else None

    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int,
                 min_new_tokens: int = 0) -> list[Generation]:
        """`min_new_tokens` (not a study setting) forces responses of an exact length for
        the benchmarks; the study leaves it at 0."""
        import torch

        if greedy and n != 1:
            raise ValueError("greedy decoding gives one response per clip; n must be 1")
        trie = self._trie(decoding, classes)
        torch.manual_seed(seed)
        if self.engine == "prefix":
            prefix = self._prefill(clips, user_text)
            tokens, logp = prefix_engine.decode(
                self.model, prefix, n=n, greedy=greedy, max_new_tokens=decoding.max_new_tokens,
                stop_ids=self.stop_ids, pad_id=self.pad_id, temperature=decoding.temperature,
                top_k=decoding.top_k, top_p=decoding.top_p,
                allowed=trie.allowed if trie else None, min_new_tokens=min_new_tokens,
                static_cache=self.static_cache, compile=self.compile)
            return self._to_generations(clips, n, tokens, logp)
        inputs = self._inputs(clips, user_text)
        kwargs = dict(num_return_sequences=n)
        if min_new_tokens:
            kwargs["min_new_tokens"] = min_new_tokens
        if greedy:
            kwargs.update(do_sample=False)
        else:
            # top_k=0 is passed explicitly: None would fall back to the checkpoint's default.
            kwargs.update(do_sample=True, temperature=decoding.temperature,
                          top_p=decoding.top_p, top_k=decoding.top_k)
        tokens, logp = self._hf_generate(inputs, decoding, trie, **kwargs)
        return self._to_generations(clips, n, tokens, logp)

    def beam(self, clips: Sequence[Clip], user_text: str, *, beams: int, decoding: Decoding,
             classes: Sequence[str]) -> list[Generation]:
        """B beam-search candidates per clip; idx is the rank (0 = highest beam score,
        transformers' length-normalised score). The prefix engine runs generate()'s beam
        search from one prefill per clip (engine.beam_search, tested equal to
        `generate(num_beams=B)`); `engine="generate"` calls generate() itself."""
        if beams < 1:
            raise ValueError(f"beams must be >= 1, got {beams}")
        trie = self._trie(decoding, classes)
        if self.engine == "prefix":
            prefix = self._prefill(clips, user_text)
            out = prefix_engine.beam_search(
                self.model, prefix, beams=beams, max_new_tokens=decoding.max_new_tokens,
                stop_ids=self.stop_ids, pad_id=self.pad_id,
                allowed=trie.allowed if trie else None, early_stopping=True)
            return self._to_generations(clips, beams, out.tokens, out.token_logp)
        tokens, logp = self._hf_generate(self._inputs(clips, user_text), decoding, trie,
                                         num_beams=beams,
                                         num_return_sequences=beams, do_sample=False,
                                         early_stopping=True)
        return self._to_generations(clips, beams, tokens, logp)

    def _hf_generate(self, inputs, decoding: Decoding, trie, **kwargs):
        """transformers' own generate(); returns the new tokens and each token's
        log-probability under the raw (temperature 1, unconstrained) logits."""
        import torch

        prompt_len = inputs["input_ids"].shape[1]
        kwargs.update(max_new_tokens=decoding.max_new_tokens, return_dict_in_generate=True,
                      output_logits=True, output_scores=True, pad_token_id=self.pad_id,
                      eos_token_id=self.stop_ids)
        if trie:
            kwargs["prefix_allowed_tokens_fn"] = prefix_allowed_tokens_fn(trie, prompt_len)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        tokens = out.sequences[:, prompt_len:]
        if getattr(out, "beam_indices", None) is not None:
            # Beam search scores are log-softmax of the raw logits, masked (not renormalised)
            # by the constraint, so the chosen tokens' transition scores are raw log-probs.
            logp = self.model.compute_transition_scores(out.sequences, out.scores,
                                                        out.beam_indices, normalize_logits=False)
            return tokens, logp.float()
        raw = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)
        return tokens, raw.gather(-1, tokens[..., None]).squeeze(-1)

    def label_scores(self, clips: Sequence[Clip], user_text: str,
                     classes: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """One prefill per batch, then every class name (+ end of turn) teacher-forced from
        the prefix in one forward; the probabilities are renormalised over the classes."""
        import torch

        seqs = [self.tokenizer.encode(c, add_special_tokens=False) + [self.eos_id] for c in classes]
        logp = prefix_engine.teacher_force(self.model, self._prefill(clips, user_text), seqs)
        probs = torch.softmax(logp, dim=-1).cpu().numpy().astype(np.float64)
        return [(c.utt_id, p / p.sum()) for c, p in zip(clips, probs)]

    def verify(self, clips: Sequence[Clip], candidates: Sequence[Sequence[tuple[int, str]]],
               verifier_text: str) -> list[Verdict]:
        """P(Yes) for each candidate answer, from one prefill per clip up to the answer.

        The chat-formatted verifier prompt is split at the answer slot; every distinct answer
        of the batch is teacher-forced as `answer + rest of prompt + Yes` and `... + No`, so
        the prompt's shared part and the audio run once per clip. The two sequences share all
        but the last tokens, so their log-probability difference is log P(Yes)/P(No) at the
        answer position."""
        import torch

        if len(candidates) != len(clips):
            raise ValueError(f"{len(clips)} clips but {len(candidates)} candidate lists")
        if "{answer}" not in verifier_text:
            raise ValueError("the verifier prompt needs an {answer} slot")
        full = self.build_prompt(verifier_text.replace("{answer}", ANSWER_SLOT))
        head, _, tail = full.partition(ANSWER_SLOT)
        answers = sorted({text for cands in candidates for _, text in cands})
        if not answers:
            return []
        enc = lambda s: self.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
        yes, no = enc("Yes"), enc("No")
        seqs = [enc(a + tail) + yes for a in answers] + [enc(a + tail) + no for a in answers]
        logp = prefix_engine.teacher_force(self.model, self._prefill(clips, head, formatted=True),
                                           seqs)   # (B, 2K)
        k = len(answers)
        p_yes = torch.sigmoid(logp[:, :k] - logp[:, k:]).cpu().numpy().astype(np.float64)
        column = {a: j for j, a in enumerate(answers)}
        return [Verdict(clip.utt_id, idx, float(p_yes[i, column[text]]))
                for i, (clip, cands) in enumerate(zip(clips, candidates)) for idx, text in cands]

    def _to_generations(self, clips, n, tokens, token_logp) -> list[Generation]:
        import torch

        is_stop = torch.isin(tokens, torch.tensor(self.stop_ids, device=tokens.device))
        # Count tokens up to and including the first stop token; later ones are padding.
        valid = (torch.cumsum(is_stop, dim=1) - is_stop.long()) == 0
        n_tokens = valid.sum(dim=1).tolist()
        seq_logp = (token_logp.masked_fill(~valid, 0)).sum(dim=1).tolist()
        texts = self.tokenizer.batch_decode(
            [t[v].tolist() for t, v in zip(tokens, valid)], skip_special_tokens=True)
        out = []
        for row, (text, lp, nt) in enumerate(zip(texts, seq_logp, n_tokens)):
            out.append(Generation(utt_id=clips[row // n].utt_id, idx=row % n,
                                  text=text.strip(), logprob=float(lp), n_tokens=int(nt)))
        return out
