"""`python -m corpus_platform.review` (`make review`): the review page on CORPUS_HOME's data.

Curates the demo corpus first when the warehouse holds no scored examples (`make demo` does that and
trains too), builds today's review queue through the `build_review_queue` job when today has none (so the
run shows in the Dagster UI), then serves the page on 127.0.0.1:8765 (CORPUS_REVIEW_PORT or --port) and
prints its URL with the access token.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import webbrowser
from contextlib import ExitStack

import duckdb

from corpus_platform.schema import utcnow
from corpus_platform.settings import FILE_SOURCES, Layout
from corpus_platform.warehouse import connect

DEFAULT_PORT = 8765


def _scalar(layout: Layout, sql: str, params: list | None = None) -> int | None:
    """A count from the warehouse read-only; None when the file or the table is missing."""
    if not layout.warehouse.exists():
        return None
    with ExitStack() as stack:
        try:  # under the warehouse's file lock
            con = stack.enter_context(connect(layout.warehouse, read_only=True))
        except duckdb.Error as e:  # not "no data": a writer that does not take the lock holds the file
            raise SystemExit(f"the warehouse is busy (a Dagster run is writing it): retry in a moment, or pass --no-build ({e})")
        try:
            return con.execute(sql, params or []).fetchone()[0]
        except duckdb.CatalogException:
            return None


def prepare(layout: Layout, rebuild: bool = False, log=print) -> None:
    """Curate the demo corpus if nothing is curated yet, and build today's queue if it has none."""
    from corpus_platform.definitions import make_definitions
    from corpus_platform.defs.partitions import partition_key
    from corpus_platform.demo.run import ui_instance

    scored = _scalar(layout, "SELECT count(*) FROM corpus.scored_examples")
    today = _scalar(layout, "SELECT count(*) FROM corpus.review_queue WHERE queued_on = ?", [utcnow().date()])
    if scored and today and not rebuild:
        return
    defs = make_definitions(layout.home)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with ui_instance(layout) as instance:
        if not scored:
            from corpus_platform.demo.corpus import write_demo_corpus
            from corpus_platform.demo.run import DEMO_DAYS

            log(f"No curated examples under {layout.home}: curating the demo corpus first (make demo also trains).")
            write_demo_corpus(layout.landing, DEMO_DAYS)
            curate = defs.resolve_job_def("curate_partition")
            for day in DEMO_DAYS:
                for source in FILE_SOURCES:
                    r = curate.execute_in_process(partition_key=partition_key(day, source), instance=instance,
                                                  run_config=quiet, raise_on_error=False)
                    if not r.success:
                        raise SystemExit(f"curating {day} {source} failed: see the run in the Dagster UI (make ui)")
        log("Building today's review queue (job build_review_queue)...")
        r = defs.resolve_job_def("build_review_queue").execute_in_process(instance=instance, run_config=quiet,
                                                                          raise_on_error=False)
        if not r.success:
            raise SystemExit("build_review_queue failed: see the run in the Dagster UI (make ui)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus_platform.review", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CORPUS_REVIEW_PORT", DEFAULT_PORT)))
    parser.add_argument("--no-build", action="store_true", help="serve what the warehouse holds; build nothing")
    parser.add_argument("--rebuild", action="store_true", help="build the queue even if today has one (tops it up)")
    parser.add_argument("--no-open", action="store_true", help="do not open a browser")
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    if not args.no_build:
        prepare(layout, rebuild=args.rebuild)

    import uvicorn

    from corpus_platform.review.page import create_review_app, review_url

    token = os.environ.get("CORPUS_REVIEW_TOKEN") or secrets.token_urlsafe(24)
    app = create_review_app(layout.home, token)
    url = review_url(args.port, token)
    try:
        pending = _scalar(layout, "SELECT count(*) FROM corpus.review_queue q ANTI JOIN corpus.review_verdicts v "
                                  "USING (example_id, source, date)")
    except SystemExit:  # busy: the page serves as soon as it can read
        pending = None
    print(f"Review page on {layout.warehouse} ({'?' if pending is None else pending} examples pending in the queue)")
    print(f"Open: {url}", flush=True)
    if not args.no_open and os.environ.get("CORPUS_REVIEW_OPEN", "1") != "0" and (
            sys.platform == "darwin" or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        webbrowser.open(url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level=os.environ.get("CORPUS_REVIEW_LOG_LEVEL", "warning"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
