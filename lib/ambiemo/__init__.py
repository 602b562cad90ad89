"""ambiemo: a benchmark for ambiguous speech emotion recognition with audio-language models
and test-time scaling, reproducing Jia et al. (2026), "Decoding Ambiguous Emotions with
Test-Time Scaling in Audio-Language Models".

Data flow (one module per arrow): corpora -> Manifest -> alm -> Samples -> tts ->
Predictions -> metrics -> Scores -> analysis/plots -> tables and figures.
"""
__version__ = "0.1.0"
