"""Human review of the curation decisions (issue "Improvement loops", part 2).

    queue.py     the daily review queue: stratified by source x score band x rule, borderline scores and
                 new sources first, deterministic, never an example that already has a verdict
    journal.py   the verdict journal the page appends to (CORPUS_HOME/state/review/verdicts.jsonl)
    verdicts.py  the journal into corpus.review_verdicts, and verdicts over the automatic decisions when
                 the splits are rebuilt (reject, keep = bring back, edit the response)
    content.py   an example's text as the pipeline last held it (PII-masked when only raw has it)
    page.py      the review page (FastAPI on 127.0.0.1, its own port), `python -m corpus_platform.review`
"""
