"""Where a run writes: everything lives under CORPUS_HOME (default `.corpus/` in the repo).

Kept free of Dagster so plain modules, the CLI and the demo share one notion of the runtime home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SOURCES: tuple[str, ...] = ("reddit", "youtube", "twitter", "synthetic", "conversations", "public")
FILE_SOURCES: tuple[str, ...] = ("conversations", "public")
SCRAPING_SOURCES: tuple[str, ...] = ("reddit", "youtube", "twitter", "synthetic")

DEFAULT_START_DATE = "2026-01-01"


def corpus_home() -> Path:
    return Path(os.environ.get("CORPUS_HOME") or (REPO_ROOT / ".corpus")).resolve()


def start_date() -> str:
    return os.environ.get("CORPUS_START_DATE", DEFAULT_START_DATE)


@dataclass(frozen=True)
class Layout:
    """The runtime home's folders; created lazily by whoever writes."""

    home: Path

    @classmethod
    def from_env(cls) -> "Layout":
        return cls(corpus_home())

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    def landing_dir(self, source: str, date: str) -> Path:
        return self.landing / source / date

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def adapters(self) -> Path:
        return self.home / "adapters"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def state(self) -> Path:
        """Connector checkpoints, spools, the quota and cost ledgers."""
        return self.home / "state"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"
