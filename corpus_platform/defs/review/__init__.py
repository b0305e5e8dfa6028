"""Human review: the daily review queue (the page is corpus_platform.review.page)."""
