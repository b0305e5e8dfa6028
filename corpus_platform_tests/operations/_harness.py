"""Scaffolding shared by the operations tests that run the platform the way an operator does: a runtime
home with the shipped `dagster.yaml` linked into DAGSTER_HOME (as `make dagster-home` does), landing
files for the file sources, the four live sources served by the local fakes of
`corpus_platform_tests/sources/fakes` for any number of days, `dagster` / `dagster-daemon` subprocesses,
and table snapshots to compare two warehouses partition by partition.

The live sources' secrets reach the code through environment variables (`EnvVar`, as in production);
their base URLs, which are resource config, reach the code location `_location.py` through
CORPUS_TEST_* variables, so a daemon, its run workers and an in-process run all build the same
resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import dagster as dg

from corpus_platform.settings import REPO_ROOT, Layout

BIN = Path(sys.executable).parent
LOCATION_MODULE = "corpus_platform_tests.operations._location"
SECRET = "SENTINEL-OPS-SECRET-789"

# Per-partition tables and the decision rows of the partitioned stages. Compared generically (every
# column but the volatile ones), so a stage that adds columns keeps being compared.
PARTITION_TABLES = ("raw_examples", "quarantine", "filtered_examples", "deduplicated_examples", "scored_examples")
VOLATILE = {"ingest_run_id"}  # and every TIMESTAMP column (when a row was written, not what it holds)
# metadata keys that record when or by which API call something was fetched, not what it is (the fake
# model numbers its completions in arrival order); a synthetic example's created_at is its fetch time too
VOLATILE_METADATA = {"fetched_at", "completion_id"}


def days(n: int, start: date = date(2026, 1, 1)) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


# --- the runtime home -------------------------------------------------------------------------------------
def prepare_home(root: Path) -> tuple[Path, Path]:
    """CORPUS_HOME and DAGSTER_HOME as the Makefile prepares them: the shipped dagster.yaml linked in."""
    home = Path(root)
    dagster_home = Layout(home).dagster_home
    dagster_home.mkdir(parents=True, exist_ok=True)
    link = dagster_home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    return home, dagster_home


def land_file_sources(home: Path, day_list: list[date]) -> dict:
    from corpus_platform.demo.corpus import write_demo_corpus

    return write_demo_corpus(Layout(home).landing, day_list)


# --- the live sources, served by the fakes -------------------------------------------------------------
def _noon(day: date) -> datetime:
    return datetime.combine(day, dtime(12), tzinfo=timezone.utc)


class LiveFakes:
    """reddit, youtube, twitter and synthetic fakes holding `per_day` items for every day in `day_list`."""

    def __init__(self, day_list: list[date], per_day: int = 2, *, synthetic_topics: tuple[str, ...] = ("recursion", "hash maps")):
        self.days, self.per_day, self.topics = day_list, per_day, synthetic_topics
        self._stack = ExitStack()

    def __enter__(self) -> "LiveFakes":
        from corpus_platform_tests.sources.fakes.apify_server import FakeApify
        from corpus_platform_tests.sources.fakes.openai_server import FakeOpenAI
        from corpus_platform_tests.sources.fakes.reddit_server import FakeReddit, comment, post
        from corpus_platform_tests.sources.fakes.youtube_server import FakeYouTube, Video
        from corpus_platform_tests.sources.test_twitter import legacy, modern

        self.reddit = FakeReddit(client_id="cid", client_secret=SECRET).start()
        self._stack.callback(self.reddit.stop)
        self.youtube = FakeYouTube()
        self._stack.callback(self.youtube.close)
        self.apify = FakeApify(token=SECRET).start()
        self._stack.callback(self.apify.stop)
        self.openai = FakeOpenAI()  # answers a prompt the same way every time (a temperature-0 model)
        self._stack.callback(self.openai.close)
        for d, day in enumerate(self.days):
            noon = _noon(day)
            for k in range(self.per_day):
                i = d * 100 + k
                t = noon.timestamp() + 600 * k
                self.reddit.add(post(f"p{i}", "python", title=f"Question number {i} about python", selftext=f"Some details for {i}.",
                                     created_utc=t, comments=[
                                         comment(f"c{i}", f"The best answer to question {i}, with detail.", score=20, created_utc=t + 60,
                                                 replies=[comment(f"r{i}", f"Thanks, answer {i} solved my problem!", score=4,
                                                                  created_utc=t + 120)]),
                                         comment(f"d{i}", f"A weaker answer to question {i}.", score=2, created_utc=t + 90)]))
                at = (noon + timedelta(minutes=10 * k)).isoformat().replace("+00:00", "Z")
                self.youtube.add(Video(f"vid{i}", f"How to use Python lists, part {i}", at, ("python lists",),
                                       description="A short lesson.",
                                       transcripts={("manual", "en"): [f"Lists hold items in order, lesson {i}.",
                                                                       "You can append, insert and remove items."]}))
                n = (d + 1) * 100 + k + 1
                root = legacy(n * 100, f"Question {n}: what is a good habit for learning to program well?",
                              noon + timedelta(minutes=k))
                self.apify.search_results.append(root)
                self.apify.conversations[root["id_str"]] = [
                    modern(n * 100 + 1, f"@alice Answer to question {n}: write a little code every single day.",
                           noon + timedelta(minutes=k, hours=1), user=f"u{n}", reply_to=n * 100, conversation=n * 100)]
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def env(self) -> dict[str, str]:
        """Secrets as a deployment sets them, and the fakes' URLs for `_location.py`."""
        return {
            "REDDIT_CLIENT_ID": "cid", "REDDIT_CLIENT_SECRET": SECRET, "REDDIT_USER_AGENT": "linux:corpus-ops-tests:1.0 (by u/t)",
            "YOUTUBE_API_KEY": SECRET, "APIFY_API_TOKEN": SECRET, "APIFY_TWEET_ACTOR": "apidojo/tweet-scraper",
            "OPENAI_API_KEY": SECRET,
            "CORPUS_TEST_REDDIT_URL": self.reddit.url, "CORPUS_TEST_YOUTUBE_URL": self.youtube.base_url,
            "CORPUS_TEST_APIFY_URL": self.apify.url, "CORPUS_TEST_OPENAI_URL": f"{self.openai.base_url}/v1",
            "CORPUS_TEST_SYNTHETIC_TOPICS": ",".join(self.topics),
        }


def live_resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """The four live resources pointed at the fakes named by CORPUS_TEST_* (secrets through EnvVar)."""
    from corpus_platform.defs.ingest.resources import (
        RedditResource, SubredditConfig, SyntheticResource, TwitterResource, YouTubeResource,
    )

    env = os.environ
    if not env.get("CORPUS_TEST_REDDIT_URL"):
        return {}
    topics = env.get("CORPUS_TEST_SYNTHETIC_TOPICS", "recursion").split(",")
    return {
        "reddit": RedditResource(client_id=dg.EnvVar("REDDIT_CLIENT_ID"), client_secret=dg.EnvVar("REDDIT_CLIENT_SECRET"),
                                 user_agent=dg.EnvVar("REDDIT_USER_AGENT"), subreddits=[SubredditConfig(name="python", limit=100)],
                                 oauth_url=env["CORPUS_TEST_REDDIT_URL"], reddit_url=env["CORPUS_TEST_REDDIT_URL"],
                                 requests_per_minute=100_000),
        "youtube": YouTubeResource(api_key=dg.EnvVar("YOUTUBE_API_KEY"), queries=["python lists"],
                                   discovery_url=f"{env['CORPUS_TEST_YOUTUBE_URL']}/$discovery/rest?version=v3",
                                   transcript_base_url=env["CORPUS_TEST_YOUTUBE_URL"]),
        "twitter": TwitterResource(api_token=dg.EnvVar("APIFY_API_TOKEN"), actor_id=dg.EnvVar("APIFY_TWEET_ACTOR"),
                                   search_terms=["learn to program"], api_url=env["CORPUS_TEST_APIFY_URL"]),
        "synthetic": SyntheticResource(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=env["CORPUS_TEST_OPENAI_URL"],
                                       model="gpt-test", templates=["Explain {topic} to a beginner in two sentences."],
                                       items_json=json.dumps({"topic": topics}), requests_per_minute=100_000),
    }


# --- processes ----------------------------------------------------------------------------------------
def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "CORPUS_HOME": str(home), "DAGSTER_HOME": str(Layout(home).dagster_home),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def dagster_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`dagster-daemon run` on the test code location: it dequeues queued runs and launches them."""
    fh = open(log, "w")
    return subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", LOCATION_MODULE, "-d", str(REPO_ROOT)],
                            cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group we started (the daemon and its code server), then SIGKILL what is left."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group is ours: start_new_session=True
    except ProcessLookupError:
        pass
    proc.wait(5)


# --- snapshots --------------------------------------------------------------------------------------
def _clean_metadata(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        obj = json.loads(value)
    except ValueError:
        return value
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items()
               if k not in VOLATILE_METADATA and not (k == "created_at" and obj.get("synthetic") is True)}
    return json.dumps(obj, sort_keys=True)


def table_rows(con, table: str, where: str = "", params: list | None = None) -> list[tuple]:
    """Every row of corpus.<table> without its volatile columns (timestamps, the ingesting run's id) and
    volatile metadata keys, sorted: a multiset to compare with another warehouse's."""
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'corpus' "
                       "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    keep = [c for c, t in cols if c not in VOLATILE and not t.upper().startswith("TIMESTAMP")]
    names = ", ".join('"' + c + '"' for c in keep)
    rows = con.execute(f"SELECT {names} FROM corpus.{table} {where}", params or []).fetchall()
    meta = keep.index("metadata") if "metadata" in keep else None
    out = []
    for r in rows:
        r = list(r)
        if meta is not None:
            r[meta] = _clean_metadata(r[meta])
        out.append(tuple(json.dumps(v, sort_keys=True, default=str) for v in r))
    return sorted(out)


def partition_counts(warehouse: Path) -> dict[str, dict[tuple[str, str], int]]:
    """Rows per (date, source) of every partitioned table, and of decisions per stage and decision."""
    from corpus_platform.warehouse import connect

    out: dict[str, dict[tuple[str, str], int]] = {}
    with connect(warehouse, read_only=True) as con:
        for table in PARTITION_TABLES:
            out[table] = {(str(d), s): n for d, s, n in con.execute(
                f"SELECT date, source, count(*) FROM corpus.{table} GROUP BY ALL").fetchall()}
        for stage, decision, d, s, n in con.execute(
                "SELECT stage, decision, date, source, count(*) FROM corpus.decisions GROUP BY ALL").fetchall():
            out.setdefault(f"decisions:{stage}:{decision}", {})[(str(d), s)] = n
    return out


def snapshot(warehouse: Path, tables: Iterable[str] | None = None) -> dict[str, list[tuple]]:
    """{table: rows} of every base table in schema `corpus` (or of `tables`), generically: a stage that
    adds a table or a column keeps being compared."""
    from corpus_platform.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'corpus' "
                                             "AND table_type = 'BASE TABLE'").fetchall()} - {"schema_migrations"}
        return {t: table_rows(con, t) for t in sorted(present if tables is None else set(tables) & present)}


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")



# --- children to kill -------------------------------------------------------------------------------
class Child:
    """`python -m corpus_platform_tests.operations._child ...` in its own process group, its stdout read
    line by line; `kill()` is SIGKILL to the whole group (what a crash or an OOM kill does to a run)."""

    def __init__(self, *args: str, env: dict[str, str]):
        import queue
        import threading

        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.seen: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "corpus_platform_tests.operations._child", *args],
                                     cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._err.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def stderr(self) -> str:
        return "".join(self._err[-60:])

    def wait_for(self, prefix: str, timeout: float = 120) -> str:
        """The next marker line starting with `prefix` (earlier ones are kept in `seen`)."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {prefix!r} from the child within {timeout:.0f}s; seen {self.seen[-5:]}\n{self.stderr}")
            if line is None:
                self.proc.wait(10)
                raise AssertionError(f"child exited {self.proc.returncode} before {prefix!r}; seen {self.seen[-5:]}\n{self.stderr}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.drain()

    def drain(self, timeout: float = 5) -> None:
        """Move what the (dead) child printed and nobody waited for into `seen`."""
        import queue

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                self.lines.put(None)  # later wait_for calls still see the end
                return
            self.seen.append(line)

    def finish(self, timeout: float = 300) -> str:
        """Wait for `DONE`; returns `ok` or `failed`."""
        line = self.wait_for("DONE", timeout)
        self.proc.wait(30)
        return line.split()[1]


class DirWatcher:
    """Lists `root` every millisecond or so in a thread and records every visible (not dot-prefixed)
    directory that lacks one of `required` at that moment: a half-written directory a reader could pick.
    Pointer files (`pointers`, e.g. LATEST) must name a directory that is complete too."""

    def __init__(self, root: Path, required: tuple[str, ...], pointers: tuple[str, ...] = ()):
        import threading

        self.root, self.required, self.pointers = Path(root), required, pointers
        self.violations: list[tuple[str, list[str]]] = []
        self.listings = 0
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def check(self) -> None:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        self.listings += 1
        for name in names:
            self.seen.add(name)
            path = self.root / name
            if name in self.pointers:
                try:
                    target = path.read_text().strip()
                except FileNotFoundError:
                    continue
                missing = [f for f in self.required if not (self.root / target / f).exists()]
                if missing:
                    self.violations.append((f"{name} -> {target}", missing))
                continue
            if name.startswith(".") or not path.is_dir():
                continue
            missing = [f for f in self.required if not (path / f).exists()]
            if missing and path.exists():  # still there: not a directory renamed away mid-check
                self.violations.append((name, missing))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            time.sleep(0.001)

    def __enter__(self) -> "DirWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.check()
