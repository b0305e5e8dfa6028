"""The source × day partition matrix every partitioned stage shares."""

from datetime import date

import dagster as dg

from corpus_platform.settings import SOURCES, start_date

WAREHOUSE_POOL = "warehouse"  # every asset and check that opens the DuckDB file: one writer at a time

corpus_partitions = dg.MultiPartitionsDefinition(
    {
        # end_offset=1: today is a partition too. Apps log into today's landing folder and the landing
        # sensor runs it as it fills; without it, today's files would name a partition that does not exist.
        "date": dg.DailyPartitionsDefinition(start_date=start_date(), end_offset=1),
        "source": dg.StaticPartitionsDefinition(list(SOURCES)),
    }
)


def partition_key(day: str | date, source: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": str(day), "source": source})


def partition_of(context) -> tuple[date, str]:
    """(day, source) of the run's partition, for assets and checks alike."""
    key = context.partition_key
    keys = key.keys_by_dimension if hasattr(key, "keys_by_dimension") else corpus_partitions.get_partition_key_from_str(key).keys_by_dimension
    return date.fromisoformat(keys["date"]), keys["source"]
