"""Reading ALM answers: response text -> a distribution over a corpus's classes (or a
counted failure), and verifier replies -> scores. Jia et al. (2026) read labels, verbalised
distributions and chain-of-thought answers; every reader lives in a module of this package:

  response.py      parse_response: routes an answer to its reader by the prompt's answer kind;
                   parse_generation: the same, marking answers cut at the token limit
  label_answer.py  one label (negation-aware) and the final line of a chain of thought
  distribution.py  stated probabilities: JSON, lists, tables, prose; scale, sums, out-of-space
  mentions.py      emotion words in free text and whether they are negated
  numbers.py       numbers as probabilities are written (0.6, 60%, 3/5)
  surface.py       Markdown and layout removed before reading
  verdicts.py      verifier replies (1-10 scores, Yes/No)
  failures.py      why predictions are missing: failure kinds counted per model and prompt
  result.py        ParseResult, FAILURE_KINDS, PARSER_VERSION, PARSER_SETTINGS
"""
from ambiemo.parse.distribution import MAX_DROPPED_SHARE, OUT_OF_SPACE_MODES, SUM_TOLERANCE
from ambiemo.parse.failures import (MEANINGS, failure_breakdown, failure_counts, failure_kind,
                                    failure_note)
from ambiemo.parse.label_answer import final_answer
from ambiemo.parse.response import ANSWERS, parse_generation, parse_response
from ambiemo.parse.result import (API_ERROR, AUDIO_ERROR, FAILURE_KINDS, OUT_OF_MEMORY,
                                  OUT_OF_SPACE, PARSER_SETTINGS, PARSER_VERSION, SHARD_ERROR,
                                  TRUNCATED, UNPARSED, ParseResult)
from ambiemo.parse.verdicts import parse_score, parse_yes_no

__all__ = ["ANSWERS", "API_ERROR", "AUDIO_ERROR", "FAILURE_KINDS", "MAX_DROPPED_SHARE",
           "MEANINGS", "OUT_OF_MEMORY", "OUT_OF_SPACE", "OUT_OF_SPACE_MODES", "PARSER_SETTINGS",
           "PARSER_VERSION", "ParseResult", "SHARD_ERROR", "SUM_TOLERANCE", "TRUNCATED",
           "UNPARSED", "failure_breakdown", "failure_counts", "failure_kind", "failure_note",
           "final_answer", "parse_generation", "parse_response", "parse_score", "parse_yes_no"]
