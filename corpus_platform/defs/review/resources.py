"""How large the daily review queue is and how it picks (editable in the launchpad)."""

import dagster as dg

from corpus_platform.review.queue import QueueSettings


class ReviewSettings(dg.ConfigurableResource):
    daily_size: int = 50  # examples queued per day (a rebuild the same day only tops up to this)
    borderline_width: float = 1.0  # quality points either side of min_quality that count as borderline
    borderline_relative: float = 0.1  # other rules: a measurement within this share of its threshold
    new_source_reviews: int = 20  # sources with fewer verdicts are new and come first
    seed: str = "review-queue-v1"  # salt of the deterministic ordering inside a stratum

    def queue(self) -> QueueSettings:
        return QueueSettings(daily_size=self.daily_size, borderline_width=self.borderline_width,
                             borderline_relative=self.borderline_relative, new_source_reviews=self.new_source_reviews,
                             seed=self.seed)
