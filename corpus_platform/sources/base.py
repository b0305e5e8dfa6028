"""What every source returns, and how an unconfigured one fails.

A source turns one `date` partition's input into canonical examples plus quarantine rows: input that
could not become an example is never dropped silently, it lands in `corpus.quarantine` with its file,
line and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from corpus_platform.schema import empty_examples, quarantine_frame


class SourceNotConfigured(RuntimeError):
    """Raised instead of returning an empty frame when a source lacks what it needs."""

    def __init__(self, source: str, needs: list[str], detail: str = ""):
        self.source = source
        self.needs = needs
        msg = f"source '{source}' is not configured: set {', '.join(needs)}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


@dataclass
class SourceBatch:
    examples: pl.DataFrame = field(default_factory=empty_examples)
    quarantine: pl.DataFrame = field(default_factory=lambda: quarantine_frame([]))
    files: list[str] = field(default_factory=list)  # input files read, relative to the landing folder
