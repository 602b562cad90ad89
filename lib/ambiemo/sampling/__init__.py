"""Manifest -> Samples: run a model over a corpus and keep every answer in the sample store.

The `sampling` arrow of the data flow (docs/design.md; Jia et al., 2026). `store` is the
SQLite sample store (resumable, one row per answer); `generate` runs the answer kinds a
config asks for (greedy, samples, beams, chain of thought, class-name scores) batch by batch;
`verify` has a verifier model judge another run's candidates.
"""
