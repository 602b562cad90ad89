"""Hypothesis strategies shared by the metric tests."""
import numpy as np
from hypothesis import strategies as st


@st.composite
def dist_pair(draw):
    """Two distributions over the same 2-6 classes (weights in [0, 10], normalised)."""
    k = draw(st.integers(2, 6))
    vec = st.lists(st.floats(0, 10), min_size=k, max_size=k).filter(lambda w: sum(w) > 1e-3)
    p, q = np.array(draw(vec)), np.array(draw(vec))
    return p / p.sum(), q / q.sum()
