"""Config -> the whole study: plan the notebook runs, check everything first, run them with
papermill, report what happened.

`plan` turns a config into jobs (one notebook run each), `preflight` checks every input
before anything runs, `stages` holds the work each notebook does (one function per
notebook, so a stage can run without papermill), `run` executes the plan and builds the
report, `status` records and summarises what each job did. `python -m ambiemo.pipeline` is
what `run_all.sh` calls (docs/design.md, "Entry points").
"""
