"""Curation thresholds as configuration (editable in the launchpad), not literals in code."""

import dagster as dg

from corpus_platform.curation.filters import FilterSettings
from corpus_platform.curation.scoring import ScoreSettings
from corpus_platform.curation.splits import SplitSettings


class CurationSettings(dg.ConfigurableResource):
    min_response_chars: int = 10
    max_total_chars: int = 12_000
    min_alpha_ratio: float = 0.3
    min_quality: float = 3.0
    min_mean_quality: float = 5.0
    train_ratio: float = 0.90
    val_ratio: float = 0.05
    test_ratio: float = 0.05
    min_train_rows: int = 50
    min_val_rows: int = 5
    min_test_rows: int = 5

    def filters(self) -> FilterSettings:
        return FilterSettings(self.min_response_chars, self.max_total_chars, self.min_alpha_ratio)

    def scoring(self) -> ScoreSettings:
        return ScoreSettings(min_quality=self.min_quality)

    def splits(self) -> SplitSettings:
        return SplitSettings(train=self.train_ratio, val=self.val_ratio, test=self.test_ratio)

    def min_rows(self) -> dict[str, int]:
        return {"train": self.min_train_rows, "val": self.min_val_rows, "test": self.min_test_rows}
