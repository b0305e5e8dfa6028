"""daily_scrape_schedule: yesterday's partition of every scraping source, once a day."""

from datetime import timedelta

import dagster as dg

from corpus_platform.defs.operations.jobs import curate_partition_job
from corpus_platform.defs.partitions import partition_key
from corpus_platform.settings import SCRAPING_SOURCES


@dg.schedule(job=curate_partition_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_scrape_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    for source in SCRAPING_SOURCES:
        yield dg.RunRequest(partition_key=partition_key(day, source), run_key=f"scrape|{source}|{day}")
