"""Manifest -> Features: acoustic features per clip for the supervised soft-label reference.

`cache` extracts any per-clip feature set in parallel (a process pool, or Ray tasks) into a
Parquet cache next to the Manifest (`runs/<config>/features/<corpus>__<set>.parquet`), with a
counted failure row for a clip whose audio fails; `egemaps` is openSMILE's eGeMAPS v02 (88
functionals); `ssl` the mean of one hidden layer of a self-supervised speech encoder
(WavLM Base+). `ambiemo.tts.soft_reference` trains the `egemaps_soft` / `wavlm_soft` rows on
them.
"""
