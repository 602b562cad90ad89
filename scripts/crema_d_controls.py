"""The README's CREMA-D reference numbers: one-hot predictions, their cross-fitted
`greedy_smoothed` controls and the reference rows, scored on the real annotations.

    PYTHONPATH=lib .venv/bin/python scripts/crema_d_controls.py CREMA_D_ROOT
"""
import json
import sys

import numpy as np
import pandas as pd

from ambiemo import corpora, metrics
from ambiemo.tts import controls
from ambiemo.tts.references import reference_predictions, rescore_new_raters
from ambiemo.analysis.summaries import summary_table

SEED = 0
N_BOOT = 200


def main(root: str) -> None:
    man = corpora.load("crema_d", root)
    classes = man.attrs["classes"]
    pcols = [f"p_{c}" for c in classes]
    human = man[pcols].to_numpy()
    rng = np.random.default_rng(SEED)
    # one vote drawn from each clip's own human distribution: a one-hot "rater" predictor
    drawn = np.array([rng.choice(len(classes), p=p / p.sum()) for p in human])
    answers = {"oracle": np.eye(len(classes))[human.argmax(1)],
               "sampled_rater": np.eye(len(classes))[drawn]}
    rows = []
    for name, q in answers.items():
        f = pd.DataFrame({"utt_id": man["utt_id"], "model": name, "strategy": "greedy", "n": 1,
                          "replicate": 0})
        f[pcols] = q
        rows.append(f)
    pred = pd.concat(rows, ignore_index=True)
    ctrl = controls.control_predictions(pred, man, seed=SEED)
    scores = metrics.score(pd.concat([pred, ctrl, reference_predictions(man, seed=SEED,
                                                                        n_draws=3)]), man)
    scores = rescore_new_raters(scores, man, seed=SEED)   # the split-half second panel
    table = summary_table(scores, metrics=("js_divergence", "bhattacharyya_coefficient", "r2",
                                           "accuracy"), n_boot=N_BOOT, seed=SEED, classes=classes)
    # Intervals resample speakers and sentences (the pigeonhole bootstrap, analysis/clusters.py).
    cells = {m: [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                 zip(table[m], table[f"{m}_lo"], table[f"{m}_hi"])]
             for m in ("js_divergence", "bhattacharyya_coefficient", "r2", "accuracy")}
    print(pd.DataFrame({"model": table["model"], "strategy": table["strategy"], **cells,
                        "scheme": table["scheme"]}).to_string(index=False))
    # The smoothing "gain" as a paired test: intervals resampling clips vs speakers x sentences.
    from ambiemo.analysis import paired_comparison
    for model in answers:
        for cluster in ("clip", "auto"):
            r = paired_comparison(scores, {"model": model, "strategy": "greedy_smoothed"},
                                  {"model": model, "strategy": "greedy"}, n_perm=2000,
                                  n_boot=N_BOOT, seed=SEED, cluster=cluster)
            print(f"{model}: JS smoothed - greedy {r.diff:.3f} [{r.diff_lo:.3f}, "
                  f"{r.diff_hi:.3f}] ({r.scheme}, {r.n_clusters} clusters)")
    print("cross-fitted weights:", {m: round(json.loads(p)["weight"], 3)
                                    for m, p in ctrl.groupby("model")["params"].first().items()})


if __name__ == "__main__":
    main(sys.argv[1])
