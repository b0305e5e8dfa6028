"""Multi-teacher distillation: instructions from chosen sources answered by several OpenAI-compatible
teachers (routed by category), judged, and the best answer per instruction kept above the threshold.

- `teachers`: teacher configuration, the category classifier and routing, one request with retries.
- `batch`: OpenAI Batch API request and result files.
- `distill`: one partition's pass over `corpus.scored_examples` into `corpus.teacher_answers` and
  `corpus.distilled_examples`.
"""
