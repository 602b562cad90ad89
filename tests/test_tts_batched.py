"""A batch of utterances is aggregated as each utterance alone (tts.run_batch, which
predict() uses). Found by mutation testing (docs/testing.md): taking the best score, or the
softmax's max shift, over the whole batch instead of per utterance passed every
single-utterance test. Here the utterances' log-likelihoods lie on very different scales
(near -1 and near -6000, where exp(-6000 / 5 tokens) is 0 in float64), so a batch-wide
maximum selects nothing, or underflows, in the far row."""
import numpy as np
import pytest

from ambiemo import tts

rng = np.random.default_rng(4)
B, N, K = 3, 5, 4
DISTS = rng.dirichlet(np.ones(K), size=(B, N))
DISTS[1, 2] = np.nan                                    # an unparseable candidate
LOGPROB = -rng.random((B, N)) * np.array([[2.0], [3.0], [5.0]]) - np.array([[0.5], [6000.0], [40.0]])
N_TOKENS = rng.integers(1, 6, size=(B, N)).astype(float)
VERIFIER = rng.random((B, N))
PARAMS = {"majority": {}, "bon": {}, "w_bon": {"tau": 1.0}, "alm_v": {},
          "w_alm_v": {"weighting": "softmax", "tau": 0.5}, "dirichlet": {}}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_batch_equals_each_utterance_alone(name):
    out, n_usable, _ = tts.run_batch(name, DISTS, logprob=LOGPROB, n_tokens=N_TOKENS,
                                     verifier=VERIFIER, **PARAMS[name])
    for b in range(B):
        alone = tts.aggregate(name, DISTS[b], logprob=LOGPROB[b], n_tokens=N_TOKENS[b],
                              verifier=VERIFIER[b], **PARAMS[name])
        assert np.isfinite(alone).all() and np.isclose(alone.sum(), 1)
        np.testing.assert_allclose(out[b], alone, rtol=1e-9, atol=1e-12)
    assert n_usable.tolist() == [N, N - 1, N]


def test_bon_picks_each_utterances_own_best():
    out, _, _ = tts.run_batch("bon", DISTS, logprob=LOGPROB, n_tokens=N_TOKENS, length_norm=False)
    for b in range(B):
        lp = np.where(np.isfinite(DISTS[b]).all(1), LOGPROB[b], -np.inf)
        np.testing.assert_allclose(out[b], DISTS[b, lp.argmax()])


# -- validation the strategies' own tests left open (mutation-testing survivors) -------------

def test_dirichlet_epsilon_must_lie_strictly_between_0_and_1():
    assert tts.resolve_params("dirichlet", epsilon=0.5)["epsilon"] == 0.5
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="epsilon must lie in"):
            tts.resolve_params("dirichlet", epsilon=bad)


def test_length_normalised_likelihood_needs_token_counts():
    d = DISTS[0]
    with pytest.raises(ValueError, match="n_tokens"):
        tts.aggregate("bon", d, logprob=LOGPROB[0], length_norm=True)
    # without length normalisation the token counts are not needed
    assert np.isfinite(tts.aggregate("bon", d, logprob=LOGPROB[0], length_norm=False)).all()


def test_a_candidate_with_zero_tokens_is_unusable_when_length_normalising():
    n_tokens = N_TOKENS[0].copy()
    n_tokens[LOGPROB[0].argmax()] = 0       # the best candidate has no tokens: not usable
    out = tts.combine("bon", DISTS[0], logprob=LOGPROB[0], n_tokens=n_tokens,
                      length_norm=True)
    assert out.n_usable == N - 1
