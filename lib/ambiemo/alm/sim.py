"""Simulated ALMs (registry names `sim-*`): answers drawn from known distributions.

The study of Jia et al. (2026) asks whether test-time scaling brings an ALM's answers closer
to the human vote distribution. Whether the pipeline *can* show that -- and which of its
numbers come from the metrics themselves -- is only checkable with a model whose answer
distribution is known. These adapters are such models: for each clip they answer from a
distribution `q` built from the clip's own human distribution `p`, through the same runner,
sample store, strategies and analysis as a real model. What must come out is then known:
a model sampling `p` itself has a majority vote that approaches the `new_raters` reference
as N grows, and a constant answer scores the accuracy of that class's share of majority
labels.

The family (`q` per clip, over the corpus's classes):
- `sim-human`: q = p (the human distribution itself);
- `sim-sharp`: q proportional to p**3 (a confident model that agrees with the majority);
- `sim-flat`: q = 0.5 p + 0.5 uniform (an under-confident model);
- `sim-constant`: q = one-hot on `label` ("neutral" by default) for every clip.
`power`, `mix` and `label` are adapter options, so a config can add others. To every q a
floor of `FLOOR` = 1e-6 is mixed in, as a real model's softmax never gives exactly zero:
every answer has a finite log-likelihood, and beam search can rank every class.

How a sim model sees `p`: the runners call `adapter.bind_manifest(manifest)` (alm/base.py)
with the Manifest they sample, before computing the run key; `load_model("sim-human",
manifest=m)` binds one at load time. It is bound, not read from a path, because one adapter
serves every corpus of a study in one session and the Manifest (with the corpus protocol's
selection applied) is what the runner holds; the digest of the bound distributions enters
`identity()`, so samples never outlive the annotations they were drawn from.

What it answers, by the form the instruction asks for (`answer_form`, read from the prompt
text as a real model reads it):
- a label ("Answer with exactly one word"): a class drawn from q; log-likelihood log q(c);
- chain of thought (an "Answer:" line requested): a fixed sentence, then "Answer: <class>",
  the class drawn as above; where the CoT prompt asks for probabilities
  (`cot_distribution`), "Answer: " and the distribution below on that one line;
- a distribution (the prompt asks for probabilities): the shares of `listeners` (10)
  imagined listeners, each drawn from q, written "class: share" per line; its log-likelihood
  is the multinomial log-probability of those counts (scipy.stats.multinomial), so sampled
  answers, their log-likelihoods and the greedy answer (the most likely count vector) come
  from one stated distribution.
Decoding settings act on q as on a model's next-token distribution: temperature
(q**(1/T)), top-k and top-p; log-likelihoods stay at temperature 1, as for real models.
Token counts are constant per answer form, so length normalisation changes no ranking.
`label_scores` returns q; `verify` scores a candidate answer d by sum_c d_c q(c) -- for a
one-hot candidate the verifier's probability of its label (for `sim-human`, the human share).

Randomness: each clip's draws come from numpy's generator seeded by (the seed the runner
gives the call -- derived from the run seed, the kind and the batch -- and the utt_id), so a
rerun, or a resumed run, draws the same answers.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ambiemo.alm.base import ALMAdapter, Clip, Decoding, Generation, Verdict
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.labels import columns
from ambiemo.parse import parse_response

FLOOR = 1e-6
LISTENERS = 10
ANSWER_FORMS = ("label", "cot", "cot_distribution", "distribution")
# Tokens of one answer, end of turn included: constant per form (no length effect).
N_TOKENS = {"label": 2, "cot": 24}
COT_REASONING = "The pitch, pace and loudness of the voice were weighed against each other."

# Fictitious, distinct sizes spanning two decades, so a smoke study's capacity axis has
# separated points. Size and behaviour are unrelated by design: any capacity "effect" among
# sim models is an artefact of which behaviour was given which size.
SIM_MODELS = (
    ModelSpec(name="sim-human", checkpoint="sim:human", hf_class="simulated", n_params=1e9,
              adapter="SimulatedALM", options={"power": 1.0, "mix": 0.0}),
    ModelSpec(name="sim-sharp", checkpoint="sim:sharp", hf_class="simulated", n_params=4e9,
              adapter="SimulatedALM", options={"power": 3.0, "mix": 0.0}),
    ModelSpec(name="sim-flat", checkpoint="sim:flat", hf_class="simulated", n_params=1.6e10,
              adapter="SimulatedALM", options={"power": 1.0, "mix": 0.5}),
    ModelSpec(name="sim-constant", checkpoint="sim:constant", hf_class="simulated",
              n_params=2.5e8, adapter="SimulatedALM", options={"label": "neutral"}),
)


def answer_form(user_text: str) -> str:
    """The answer form an instruction asks for: "cot" when it asks for a final "Answer:"
    line, "distribution" when it asks for probabilities, else "label"."""
    if "Answer:" in user_text:
        # a CoT prompt whose final line states probabilities (cot_distribution)
        return "cot_distribution" if re.search(r"probabilit", user_text, re.IGNORECASE) \
            else "cot"
    if re.search(r"probabilit", user_text, re.IGNORECASE):
        return "distribution"
    return "label"


def answer_distribution(p: np.ndarray, *, power: float = 1.0, mix: float = 0.0,
                        label_index: int | None = None) -> np.ndarray:
    """q from a human distribution p (rows): one-hot on `label_index`, or
    (1 - mix) * normalise(p**power) + mix * uniform; then the floor is mixed in."""
    p = np.asarray(p, dtype=float)
    k = p.shape[-1]
    if label_index is not None:
        q = np.zeros_like(p)
        q[..., label_index] = 1.0
    else:
        q = np.power(p, power)
        q = q / q.sum(axis=-1, keepdims=True)
        q = (1 - mix) * q + mix / k
    return (1 - FLOOR) * q + FLOOR / k


def decoding_filter(q: np.ndarray, decoding: Decoding) -> np.ndarray:
    """q as sampled under `decoding`: temperature, then top-k, then top-p (nucleus)."""
    q = np.power(q, 1.0 / decoding.temperature)
    q = q / q.sum()
    order = np.argsort(-q, kind="stable")
    keep = np.zeros(len(q), dtype=bool)
    if decoding.top_k:
        order = order[:decoding.top_k]
    # The smallest head of the sorted classes whose mass reaches top_p.
    cum = np.cumsum(q[order])
    head = int(np.searchsorted(cum, decoding.top_p - 1e-12)) + 1
    keep[order[:head]] = True
    q = np.where(keep, q, 0.0)
    return q / q.sum()


@lru_cache(maxsize=16)
def count_vectors(k: int, m: int) -> np.ndarray:
    """Every way m listeners split over k classes (stars and bars), shape (C(m+k-1, k-1), k)."""
    out = []
    for bars in combinations(range(m + k - 1), k - 1):
        edges = (-1, *bars, m + k - 1)
        out.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    return np.array(out, dtype=np.int64)


def multinomial_logpmf(counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """log P(counts | m = counts.sum(), q) for each row of counts (scipy's formula, vectorised
    over the rows; a test checks it against scipy.stats.multinomial)."""
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=-1)
    return gammaln(m + 1) - gammaln(counts + 1).sum(axis=-1) + (counts * np.log(q)).sum(axis=-1)


def distribution_text(counts: np.ndarray, classes: Sequence[str]) -> str:
    m = int(np.sum(counts))
    return "\n".join(f"{c}: {k / m:.2f}" for c, k in zip(classes, counts))


@register_adapter()
class SimulatedALM(ALMAdapter):
    """An ALM whose answer distribution per clip is a stated function of the human one."""

    max_audio_s = None

    def __init__(self, checkpoint: str, *, name: str, power: float = 1.0, mix: float = 0.0,
                 label: str | None = None, listeners: int = LISTENERS,
                 manifest: pd.DataFrame | None = None, device: str | None = None,
                 dtype: str | None = None, revision: str | None = None):
        # device, dtype and revision are accepted because the pipeline passes them to every
        # model; nothing here runs on a device or is downloaded.
        if not str(checkpoint).startswith("sim:"):
            raise ValueError(f"{name}: checkpoint {checkpoint!r} is not 'sim:<kind>'")
        if power <= 0 or not 0 <= mix <= 1 or listeners < 1:
            raise ValueError(f"{name}: need power > 0, 0 <= mix <= 1 and listeners >= 1; got "
                             f"power={power}, mix={mix}, listeners={listeners}")
        self.name, self.checkpoint = name, str(checkpoint)
        self.power, self.mix, self.label, self.listeners = float(power), float(mix), label, int(listeners)
        self._p: dict[str, dict[str, float]] = {}
        self._digest = None
        if manifest is not None:
            self.bind_manifest(manifest)

    # -- the human distributions --------------------------------------------------------------

    def bind_manifest(self, manifest: pd.DataFrame) -> None:
        """Take each clip's human distribution (the `p_<class>` columns) from `manifest`.
        Clips of an earlier bound Manifest stay known (one adapter, several corpora)."""
        classes = list(manifest.attrs.get("classes") or
                       [c.removeprefix("p_") for c in manifest.columns if c.startswith("p_")])
        missing = [c for c in columns("p", classes) if c not in manifest.columns]
        if missing or "utt_id" not in manifest.columns:
            raise KeyError(f"{self.name}: the Manifest lacks column(s) "
                           f"{missing or ['utt_id']}; a sim model needs utt_id and p_<class>")
        p = manifest[columns("p", classes)].to_numpy(dtype=float)
        for u, row in zip(manifest["utt_id"], p):
            self._p[str(u)] = dict(zip(classes, row))
        content = json.dumps({"classes": classes, "utt_id": manifest["utt_id"].astype(str).tolist(),
                              "p": np.round(p, 12).tolist()})
        self._digest = hashlib.sha256(content.encode()).hexdigest()[:16]

    def _human(self, utt_id: str) -> dict[str, float]:
        if not self._p:
            raise RuntimeError(f"{self.name}: no Manifest bound; the runners bind the one they "
                               "sample (bind_manifest), or pass manifest= to load_model")
        if utt_id not in self._p:
            raise KeyError(f"{self.name}: clip {utt_id!r} is not in the bound Manifest")
        return self._p[utt_id]

    def _q(self, utt_id: str, classes: Sequence[str]) -> np.ndarray:
        human = self._human(utt_id)
        lacking = [c for c in classes if c not in human]
        if lacking:
            raise KeyError(f"{self.name}: clip {utt_id!r} has no human share for {lacking}")
        label_index = None
        if self.label is not None:
            if self.label not in classes:
                raise ValueError(f"{self.name}: constant label {self.label!r} is not a class "
                                 f"of this corpus: {list(classes)}")
            label_index = list(classes).index(self.label)
        p = np.array([human[c] for c in classes])
        return answer_distribution(p / p.sum(), power=self.power, mix=self.mix,
                                   label_index=label_index)

    # -- the adapter interface ----------------------------------------------------------------

    def identity(self) -> dict:
        return {"name": self.name, "checkpoint": self.checkpoint, "revision": None,
                "simulated": {"power": self.power, "mix": self.mix, "label": self.label,
                              "listeners": self.listeners, "floor": FLOOR, "version": 1},
                "annotations": self._digest}

    def build_prompt(self, user_text: str) -> str:
        return user_text

    def _rng(self, seed: int, utt_id: str) -> np.random.Generator:
        h = int.from_bytes(hashlib.sha256(utt_id.encode()).digest()[:8], "little")
        return np.random.default_rng([int(seed), h])

    def _answer(self, form: str, q: np.ndarray, classes, choice) -> tuple[str, float, int]:
        """(text, log-likelihood, tokens) of a label index or a count vector."""
        if form == "distribution":
            return (distribution_text(choice, classes),
                    float(multinomial_logpmf(choice, q)), 4 * len(classes) + 1)
        if form == "cot_distribution":   # the reasoning, then the distribution on one line
            return (f"{COT_REASONING}\nAnswer: "
                    + distribution_text(choice, classes).replace("\n", ", "),
                    float(multinomial_logpmf(choice, q)), N_TOKENS["cot"] + 4 * len(classes))
        text = classes[choice] if form == "label" else f"{COT_REASONING}\nAnswer: {classes[choice]}"
        return text, float(np.log(q[choice])), N_TOKENS[form]

    def _best(self, form: str, q: np.ndarray, b: int) -> list:
        """The b most likely answers, best first (ties: class order / enumeration order)."""
        if form in ("distribution", "cot_distribution"):
            counts = count_vectors(len(q), self.listeners)
            order = np.argsort(-multinomial_logpmf(counts, q), kind="stable")
            return [counts[i] for i in order[:b]]
        return [int(i) for i in np.argsort(-q, kind="stable")[:b]]

    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int) -> list[Generation]:
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one response per clip (n=1)")
        classes, form = list(classes), answer_form(user_text)
        out = []
        for clip in clips:
            q = self._q(clip.utt_id, classes)
            if greedy:
                choices = self._best(form, q, 1)
            else:
                rng, qs = self._rng(seed, clip.utt_id), decoding_filter(q, decoding)
                if form in ("distribution", "cot_distribution"):
                    choices = list(rng.multinomial(self.listeners, qs, size=n))
                else:
                    choices = [int(i) for i in rng.choice(len(q), size=n, p=qs)]
            for idx, choice in enumerate(choices):
                text, logprob, n_tokens = self._answer(form, q, classes, choice)
                out.append(Generation(clip.utt_id, idx, text, logprob, n_tokens))
        return out

    def beam(self, clips: Sequence[Clip], user_text: str, *, beams: int, decoding: Decoding,
             classes: Sequence[str]) -> list[Generation]:
        classes, form = list(classes), answer_form(user_text)
        out = []
        for clip in clips:
            q = self._q(clip.utt_id, classes)
            best = self._best(form, q, beams)
            for idx in range(beams):
                if idx < len(best):
                    out.append(Generation(clip.utt_id, idx, *self._answer(form, q, classes,
                                                                         best[idx])))
                else:  # a one-word answer has only K distinct values: never a repeat
                    out.append(Generation(clip.utt_id, idx, "", None, None,
                                          error=f"{self.name}: only {len(best)} distinct "
                                                f"{form} answers for {beams} beams"))
        return out

    def label_scores(self, clips: Sequence[Clip], user_text: str,
                     classes: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        return [(c.utt_id, self._q(c.utt_id, list(classes))) for c in clips]

    def verify(self, clips: Sequence[Clip], candidates: Sequence[Sequence[tuple[int, str]]],
               verifier_text: str) -> list[Verdict]:
        out = []
        for clip, cands in zip(clips, candidates):
            # The verifier prompt is not given the class list apart from its text; the bound
            # Manifest's class order for this clip is the corpus's.
            classes = list(self._human(clip.utt_id))
            q = self._q(clip.utt_id, classes)
            for idx, text in cands:
                form = answer_form(text)
                parsed = parse_response(text, classes,
                                        answer="cot" if form.startswith("cot") else form)
                if not parsed.ok:
                    out.append(Verdict(clip.utt_id, int(idx), None,
                                       error=f"{self.name}: candidate does not parse: "
                                             f"{parsed.reason}"))
                    continue
                out.append(Verdict(clip.utt_id, int(idx), float(parsed.dist @ q)))
        return out


for _spec in SIM_MODELS:
    register_model(_spec)
