"""One partition's distillation pass: instructions -> routed teachers -> judge -> the best answer kept.

Why this shape: every teacher answer costs money and is not reproducible, so each one is written to
`corpus.teacher_answers` (key: instruction_hash, teacher, model) as it arrives, with its tokens and cost,
and appended to the cost ledger (`state/costs/distillation.jsonl`); a rerun asks only for pairs with no
answer yet (errors are asked again, with their reason kept until then). Answers are judged through the
curation judge (`corpus_platform.curation.judge`, its own cache in `corpus.judgments`), and per
instruction the highest judged answer (ties: the cheaper one, then the teacher name) becomes a
`corpus.distilled_examples` row when it clears the judge's threshold.

Batch mode writes the same requests as OpenAI Batch API input files under the partition's batch folder
instead of calling the teachers, and ingests any output file the user drops there on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import polars as pl

from corpus_platform.calls import call_all
from corpus_platform.curation.hashing import sha256_hex
from corpus_platform.curation.judge import JudgeSettings, judge_client, judge_frame
from corpus_platform.curation.normalize import conversation_text, normalize_messages
from corpus_platform.curation.scoring import ScoreSettings, score_examples
from corpus_platform.distillation.batch import (
    MAX_REQUESTS_PER_FILE, BatchRequest, custom_id, parse_custom_id, read_batch_requests, read_batch_results,
    write_batch_requests,
)
from corpus_platform.distillation.structured_judge import SchemaJudgeClient
from corpus_platform.distillation.teachers import (
    Answer, Teacher, TeacherNotConfigured, TeacherUnavailable, ask, category_expr, check_configured, referenced,
    route,
)
from corpus_platform.schema import MESSAGE, example_id as make_example_id, utcnow
from corpus_platform.sources.policy import BackoffPolicy, RateLimiter
from corpus_platform.warehouse import replace_rows

if TYPE_CHECKING:
    import duckdb
    import openai

logger = logging.getLogger(__name__)

MODES = ("online", "batch")
OK, ERROR = "ok", "error"
REQUESTS_PREFIX = "requests-"
ANSWER_SCHEMA: dict[str, pl.DataType] = {
    "instruction_hash": pl.Utf8, "teacher": pl.Utf8, "model": pl.Utf8, "example_id": pl.Utf8, "source": pl.Utf8,
    "date": pl.Date, "category": pl.Utf8, "instruction": pl.Utf8, "answer": pl.Utf8, "finish_reason": pl.Utf8,
    "mode": pl.Utf8, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "cost_usd": pl.Float64,
    "attempts": pl.Int32, "content_hash": pl.Utf8, "judged_score": pl.Float64, "judge_dimensions": pl.Utf8,
    "judge_model": pl.Utf8, "status": pl.Utf8, "error": pl.Utf8, "answered_at": pl.Datetime("us"),
}
_KEY = ("instruction_hash", "teacher", "model")


@dataclass(frozen=True)
class DistillSettings:
    teachers: tuple[Teacher, ...]
    routing: Mapping[str, list[str]]  # category -> teacher names; "*" for the rest
    judge: JudgeSettings  # judge.threshold is the bar a winner must clear
    mode: str = "online"  # online | batch
    max_instructions: int = 0  # per partition, 0 = all (the first N by example_id)
    concurrency: int = 4  # teacher requests in flight
    backoff: BackoffPolicy = BackoffPolicy()
    retry_errors: bool = True  # ask again for pairs whose last attempt ended in an error
    keep_truncated: bool = False  # may an answer cut at max_tokens win?
    judge_json_schema: bool = False  # send the judgment's JSON schema (servers that enforce structured outputs)
    batch_dir: Path | None = None  # the partition's Batch API folder (batch mode; online mode skips what it holds)
    ledger: Path | None = None  # the cost ledger (JSONL), one line per paid answer

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.mode == "batch" and self.batch_dir is None:
            raise ValueError("batch mode needs batch_dir")

    def teacher(self, name: str) -> Teacher:
        return next(t for t in self.teachers if t.name == name)


@dataclass
class TeacherStats:
    asked: int = 0  # pairs sent this run (online) or ingested from batch results
    answered: int = 0
    errors: int = 0
    requests: int = 0  # HTTP attempts, retries included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # this run
    cost_usd_total: float = 0.0  # every answer ever paid for this teacher and model
    wins: int = 0  # instructions of this partition where it scored highest
    kept: int = 0  # of those, cleared the threshold


@dataclass
class DistillReport:
    day: str
    source: str
    mode: str
    instructions: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    unrouted: int = 0
    pairs: int = 0  # (instruction, teacher) pairs routed
    reused: int = 0  # already answered: not asked again
    asked: int = 0  # asked this run (online) / answers ingested (batch)
    answered: int = 0
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)
    awaiting_batch: int = 0  # pairs in request files whose results have not arrived
    batch_requests_written: int = 0
    batch_files_written: list[str] = field(default_factory=list)
    batch_results_ingested: list[str] = field(default_factory=list)
    batch_unreadable_lines: list[str] = field(default_factory=list)
    batch_unknown_ids: int = 0
    judged: int = 0
    judge_errors: int = 0
    judge_cost_usd: float = 0.0
    judge_stats: dict[str, Any] = field(default_factory=dict)
    kept: int = 0
    below_threshold: int = 0
    no_judged_answer: int = 0
    owned_elsewhere: int = 0  # instructions another partition already distilled
    threshold: float = 0.0
    cost_usd: float = 0.0  # teachers, this run
    teachers: dict[str, TeacherStats] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def instructions_frame(scored: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct instruction (first user turn) of a partition's examples, with its hash and
    category; an instruction asked by several examples keeps the smallest example_id."""
    first_user = pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")).list.first()
    df = (scored.select("example_id", "source", "date", "source_id", first_user.str.strip_chars().alias("instruction"))
          .filter(pl.col("instruction").is_not_null() & (pl.col("instruction").str.len_chars() > 0)))
    df = df.with_columns(sha256_hex(df["instruction"]).str.slice(0, 32).alias("instruction_hash"))
    df = df.sort("example_id").unique("instruction_hash", keep="first", maintain_order=True)
    return df.with_columns(category_expr(pl.col("instruction")).alias("category"))


def conversation_hash(messages: pl.Series) -> pl.Series:
    text = pl.DataFrame({"messages": messages}).select(conversation_text().alias("t"))["t"]
    return sha256_hex(text)


def _messages(instruction: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]


def _append_ledger(path: Path | None, records: list[dict[str, Any]]) -> None:
    if path is None or not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(con: "duckdb.DuckDBPyConnection", pairs: pl.DataFrame) -> pl.DataFrame:
    keys = pairs.select(_KEY).unique()
    con.register("_pairs", keys.to_arrow())
    try:
        return con.execute(
            "SELECT a.* EXCLUDE (judge_dimensions), CAST(a.judge_dimensions AS VARCHAR) AS judge_dimensions "
            "FROM corpus.teacher_answers a JOIN _pairs p USING (instruction_hash, teacher, model)").pl()
    finally:
        con.unregister("_pairs")


def _upsert(con: "duckdb.DuckDBPyConnection", rows: list[dict[str, Any]]) -> None:
    """Insert or replace answer rows by key, in one transaction."""
    if not rows:
        return
    frame = pl.DataFrame(rows, schema=ANSWER_SCHEMA)
    names = ", ".join(ANSWER_SCHEMA)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ANSWER_SCHEMA if c not in _KEY)
    con.register("_answers_in", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO corpus.teacher_answers ({names}) SELECT {names} FROM _answers_in "
                    f"ON CONFLICT (instruction_hash, teacher, model) DO UPDATE SET {updates}")
    finally:
        con.unregister("_answers_in")


class _Writer:
    """Buffers answer rows and ledger lines; flushes every few rows or seconds, and at the end."""

    def __init__(self, con: "duckdb.DuckDBPyConnection", ledger: Path | None, every: int = 8, seconds: float = 1.0):
        self.con, self.ledger, self.every, self.seconds = con, ledger, every, seconds
        self.rows: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def add(self, row: dict[str, Any], line: dict[str, Any] | None) -> None:
        self.rows.append(row)
        if line:
            self.lines.append(line)
        if len(self.rows) >= self.every or time.monotonic() - self.last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        _append_ledger(self.ledger, self.lines)  # the money record first
        _upsert(self.con, self.rows)
        self.rows, self.lines, self.last = [], [], time.monotonic()


def _row(pair: Mapping[str, Any], teacher: Teacher, answer: Answer, prior: Mapping[str, Any] | None, *,
         mode: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The answer row (accumulating the prior error row's attempts, tokens and cost) and its ledger line."""
    prior = prior or {}
    cost = teacher.cost(answer.prompt_tokens, answer.completion_tokens, batch=mode == "batch")
    now = utcnow()
    row = {
        "instruction_hash": pair["instruction_hash"], "teacher": teacher.name, "model": teacher.model,
        "example_id": pair["example_id"], "source": pair["source"], "date": pair["date"],
        "category": pair["category"], "instruction": pair["instruction"],
        "answer": answer.content if answer.status == OK else None, "finish_reason": answer.finish_reason,
        "mode": mode,
        "prompt_tokens": answer.prompt_tokens + int(prior.get("prompt_tokens") or 0),
        "completion_tokens": answer.completion_tokens + int(prior.get("completion_tokens") or 0),
        "cost_usd": float(cost + Decimal(str(prior.get("cost_usd") or 0))),
        "attempts": answer.attempts + int(prior.get("attempts") or 0),
        "content_hash": None, "judged_score": None, "judge_dimensions": None, "judge_model": None,
        "status": answer.status, "error": (answer.error or "")[:2000] or None, "answered_at": now,
    }
    line = None
    if answer.prompt_tokens or answer.completion_tokens or answer.status == OK:
        line = {"at": now.isoformat(), "source": pair["source"], "day": str(pair["date"]), "teacher": teacher.name,
                "model": teacher.model, "instruction_hash": pair["instruction_hash"], "mode": mode,
                "status": answer.status, "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens, "usage_reported": answer.usage_reported,
                "cost_usd": str(cost)}
    return row, line


def _count(report: DistillReport, teacher: Teacher, answer: Answer, cost: Decimal) -> None:
    stats = report.teachers.setdefault(teacher.name, TeacherStats())
    stats.asked += 1
    stats.requests += answer.attempts
    stats.prompt_tokens += answer.prompt_tokens
    stats.completion_tokens += answer.completion_tokens
    stats.cost_usd = float(Decimal(str(stats.cost_usd)) + cost)
    report.asked += 1
    if answer.status == OK:
        stats.answered += 1
        report.answered += 1
    else:
        stats.errors += 1
        report.errors += 1
        reason = (answer.error or "unknown")[:120]
        report.error_reasons[reason] = report.error_reasons.get(reason, 0) + 1


def _ask_online(con, todo: pl.DataFrame, prior: dict[tuple, dict], settings: DistillSettings, report: DistillReport,
                *, env: Mapping[str, str] | None, log: Any, sleep: Callable[[float], None],
                clients: Mapping[str, "openai.OpenAI"] | None) -> None:
    names = sorted(set(todo["teacher"].to_list()))
    teachers = {n: settings.teacher(n) for n in names}
    keys = {n: teachers[n].api_key(env) for n in names}
    made = {n: (clients or {}).get(n) or teachers[n].client(env) for n in names}
    limiters = {n: RateLimiter(t.requests_per_minute / 60.0) for n, t in teachers.items() if t.requests_per_minute}
    writer = _Writer(con, settings.ledger)
    unavailable: TeacherUnavailable | None = None

    def work(pair: dict[str, Any]) -> Answer:
        name = pair["teacher"]

        def on_retry(n: int, exc: Exception, delay: float) -> None:
            reason = str(exc).replace(keys[name], "***") if keys[name] != "not-needed" else str(exc)
            log.warning(f"teacher {name} {pair['instruction_hash'][:12]} attempt {n} failed "
                        f"({type(exc).__name__}: {reason[:200]}); retrying in {delay:.1f}s")

        return ask(teachers[name], made[name], pair["instruction"], policy=settings.backoff,
                   limiter=limiters.get(name), sleep=sleep, on_retry=on_retry, secret=keys[name])

    def record(pair: dict[str, Any], fut: Future) -> None:
        nonlocal unavailable
        exc = fut.exception()
        if isinstance(exc, TeacherUnavailable):
            unavailable = unavailable or exc
            return
        if exc is not None:
            raise exc
        answer: Answer = fut.result()
        teacher = teachers[pair["teacher"]]
        row, line = _row(pair, teacher, answer, prior.get((pair["instruction_hash"], teacher.name, teacher.model)),
                         mode="online")
        _count(report, teacher, answer, teacher.cost(answer.prompt_tokens, answer.completion_tokens))
        if answer.status != OK:
            log.warning(f"teacher {teacher.name} {pair['instruction_hash'][:12]}: {answer.error}")
        writer.add(row, line)

    try:
        call_all(todo.to_dicts(), work, record, workers=settings.concurrency, name="teacher",
                 stopped=lambda: unavailable is not None)
    finally:
        writer.flush()
    if unavailable is not None:
        raise unavailable


def _outstanding(batch_dir: Path | None) -> dict[str, Path]:
    """custom_id -> the request file that holds it, for request files whose results have not arrived."""
    found: dict[str, Path] = {}
    if batch_dir is None or not batch_dir.is_dir():
        return found
    for path in sorted(batch_dir.glob(f"{REQUESTS_PREFIX}*.jsonl")):
        for r in read_batch_requests(path):
            found[r.custom_id] = path
    return found


def _ingest_batch(con, pairs: pl.DataFrame, prior: dict[tuple, dict], settings: DistillSettings,
                  report: DistillReport, log: Any) -> None:
    """Read every output file in the batch folder, record its answers, and move it (and any request file
    now fully answered) into done/."""
    batch_dir = settings.batch_dir
    if batch_dir is None or not batch_dir.is_dir():
        return
    by_key = {(p["instruction_hash"], p["teacher"], p["model"]): p for p in pairs.to_dicts()}
    done_dir = batch_dir / "done"
    writer = _Writer(con, settings.ledger)
    answered: set[str] = set()
    for path in sorted(p for p in batch_dir.glob("*.jsonl") if not p.name.startswith(REQUESTS_PREFIX)):
        results, bad = read_batch_results(path)
        report.batch_unreadable_lines += [f"{path.name}:{u.line}: {u.reason}" for u in bad]
        for r in results:
            try:
                key = parse_custom_id(r.custom_id)
            except ValueError as exc:
                report.batch_unreadable_lines.append(f"{path.name}:{r.line}: {exc}")
                continue
            pair = by_key.get(key)
            if pair is None:
                report.batch_unknown_ids += 1
                log.warning(f"{path.name}:{r.line}: custom_id {r.custom_id} is not a pair of this partition; skipped")
                continue
            teacher = settings.teacher(key[1])
            row, line = _row(pair, teacher, r.answer, prior.get(key), mode="batch")
            prior[key] = row  # a later line (e.g. the error file after the output file) accumulates
            _count(report, teacher, r.answer, teacher.cost(r.answer.prompt_tokens, r.answer.completion_tokens, batch=True))
            writer.add(row, line)
            answered.add(r.custom_id)
        writer.flush()
        _move_to_done(path, done_dir, f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{path.name}")
        report.batch_results_ingested.append(path.name)
    for path in sorted(batch_dir.glob(f"{REQUESTS_PREFIX}*.jsonl")):
        ids = {r.custom_id for r in read_batch_requests(path)}
        if ids and ids <= answered | _answered_ids(con, ids):
            _move_to_done(path, done_dir, path.name)


def _move_to_done(path: Path, done_dir: Path, name: str) -> None:
    """Move a handled batch file into done/ under `name`, never over an earlier file of the same name."""
    done_dir.mkdir(exist_ok=True)
    target, n = done_dir / name, 1
    while target.exists():
        target, n = done_dir / f"{Path(name).stem}.{n}{Path(name).suffix}", n + 1
    os.replace(path, target)


def _answered_ids(con, ids: set[str]) -> set[str]:
    keys = [parse_custom_id(i) for i in ids]
    frame = pl.DataFrame(keys, schema={"instruction_hash": pl.Utf8, "teacher": pl.Utf8, "model": pl.Utf8}, orient="row")
    con.register("_ids", frame.to_arrow())
    try:
        rows = con.execute("SELECT instruction_hash, teacher, model FROM corpus.teacher_answers "
                           "JOIN _ids USING (instruction_hash, teacher, model)").fetchall()
    finally:
        con.unregister("_ids")
    return {custom_id(*r) for r in rows}


def _write_batch(todo: pl.DataFrame, settings: DistillSettings, report: DistillReport) -> None:
    if todo.height == 0:
        return
    requests = [BatchRequest(custom_id(p["instruction_hash"], p["teacher"], p["model"]),
                             settings.teacher(p["teacher"]).request_body(p["instruction"])) for p in todo.to_dicts()]
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256("\n".join(r.custom_id for r in requests).encode()).hexdigest()[:8]
    for i in range(0, len(requests), MAX_REQUESTS_PER_FILE):
        chunk = requests[i: i + MAX_REQUESTS_PER_FILE]
        path = settings.batch_dir / f"{REQUESTS_PREFIX}{stamp}-{digest}-{i // MAX_REQUESTS_PER_FILE:03d}.jsonl"
        report.batch_requests_written += write_batch_requests(path, chunk)
        report.batch_files_written.append(str(path))


def _judge(con, answers: pl.DataFrame, settings: DistillSettings, report: DistillReport, log: Any,
           client: "openai.OpenAI | None", sleep: Callable[[float], None]) -> pl.DataFrame:
    """Judge the ok answers (through the judge's cache) and store their scores on the answer rows."""
    if answers.height == 0:
        return answers.with_columns(pl.lit(None, pl.Float64).alias("judged_score"))
    frame = answers.with_columns(
        pl.struct(pl.lit("user").alias("role"), pl.col("instruction").alias("content")).alias("_u"),
        pl.struct(pl.lit("assistant").alias("role"), pl.col("answer").alias("content")).alias("_a"),
    ).with_columns(pl.concat_list("_u", "_a").cast(pl.List(MESSAGE)).alias("messages")).drop("_u", "_a")
    frame = frame.rename({"example_id": "origin_example_id"}).with_columns(
        conversation_hash(frame["messages"]).alias("content_hash"),
        pl.concat_str(list(_KEY), separator=":").alias("example_id"))  # judge_frame's row id: the answer's key
    judge = settings.judge
    if client is None:
        if not judge.base_url and not judge.api_key:
            raise TeacherNotConfigured("the distillation judge is not configured: set its base_url (and its key's "
                                       "variable) in the distillation resource")
        client = judge_client(judge)
    if settings.judge_json_schema:
        client = SchemaJudgeClient(client, judge.dimensions)
    judged, stats = judge_frame(con, frame.drop("judged_score", "judge_dimensions"), judge, client, log=log, sleep=sleep)
    report.judge_stats = {k: v for k, v in stats.items()}
    report.judged = int((judged["judge_status"] == OK).sum())
    report.judge_errors = int((judged["judge_status"] != OK).sum())
    report.judge_cost_usd = float(stats.get("cost_usd_this_run", 0.0))
    update = judged.select(*_KEY, "content_hash", "judged_score", "judge_dimensions",
                           pl.lit(judge.model).alias("judge_model"))
    con.register("_judged", update.to_arrow())
    try:
        con.execute("""UPDATE corpus.teacher_answers AS t SET content_hash = j.content_hash,
                       judged_score = j.judged_score, judge_dimensions = j.judge_dimensions, judge_model = j.judge_model
                       FROM _judged j WHERE t.instruction_hash = j.instruction_hash AND t.teacher = j.teacher
                       AND t.model = j.model""")
    finally:
        con.unregister("_judged")
    return judged


def _owned_elsewhere(con, inst: pl.DataFrame, day: date, source: str) -> set[str]:
    ids = inst.select(("distilled:" + pl.col("instruction_hash")).alias("source_id"))
    con.register("_sids", ids.to_arrow())
    try:
        rows = con.execute("SELECT DISTINCT d.source_id FROM corpus.distilled_examples d JOIN _sids USING (source_id) "
                           "WHERE NOT (d.date = ? AND d.source = ?)", [day, source]).fetchall()
    finally:
        con.unregister("_sids")
    return {r[0].removeprefix("distilled:") for r in rows}


def select_winners(judged: pl.DataFrame, threshold: float, *, keep_truncated: bool = False) -> pl.DataFrame:
    """The best judged answer per instruction (score, then cheaper, then teacher name), with `kept` telling
    whether it clears the threshold and `scores` ({teacher: score}) and `teachers_asked` for provenance."""
    eligible = judged.filter(pl.col("judged_score").is_not_null())
    if not keep_truncated:
        eligible = eligible.filter(pl.col("finish_reason").fill_null("stop") != "length")
    ranked = eligible.sort(["instruction_hash", "judged_score", "cost_usd", "teacher"],
                           descending=[False, True, False, False])
    best = ranked.group_by("instruction_hash", maintain_order=True).first()
    return best.with_columns((pl.col("judged_score") >= threshold).alias("kept"))


def _distilled_rows(inst: pl.DataFrame, winners: pl.DataFrame, everything: pl.DataFrame, settings: DistillSettings,
                    day: date, source: str) -> pl.DataFrame:
    kept = winners.filter(pl.col("kept"))
    if kept.height == 0:
        return pl.DataFrame()
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for r in everything.sort("teacher").to_dicts():
        by_hash.setdefault(r["instruction_hash"], []).append(r)
    origin = {r["instruction_hash"]: r for r in inst.to_dicts()}
    rows = []
    now = utcnow()
    for w in kept.to_dicts():
        h = w["instruction_hash"]
        o = origin[h]
        asked = by_hash.get(h, [])
        meta = {
            "distilled": True, "original_example_id": o["example_id"], "original_source_id": o["source_id"],
            "instruction_hash": h, "category": o["category"], "winner": w["teacher"], "model": w["model"],
            "judged_score": w["judged_score"], "threshold": settings.judge.threshold, "judge_model": settings.judge.model,
            "judge_dimensions": json.loads(w["judge_dimensions"]) if w.get("judge_dimensions") else None,
            "teachers_asked": [{"teacher": a["teacher"], "model": a["model"], "status": a["status"],
                                "judged_score": a.get("judged_score"), "finish_reason": a.get("finish_reason"),
                                "cost_usd": a["cost_usd"], "error": a.get("error")} for a in asked],
            "scores": {a["teacher"]: a.get("judged_score") for a in asked},
            "finish_reason": w["finish_reason"], "answered_at": str(w["answered_at"]),
        }
        sid = f"distilled:{h}"
        rows.append({"example_id": make_example_id(source, sid), "source": source, "date": day, "source_id": sid,
                     "messages": _messages(o["instruction"], w["answer"]),
                     "metadata": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str),
                     "collected_at": now, "teacher": w["teacher"], "judged_score": float(w["judged_score"])})
    df = pl.DataFrame(rows, schema={"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date, "source_id": pl.Utf8,
                                    "messages": pl.List(MESSAGE), "metadata": pl.Utf8,
                                    "collected_at": pl.Datetime("us"), "teacher": pl.Utf8, "judged_score": pl.Float64})
    df = normalize_messages(df)
    df = df.with_columns(conversation_hash(df["messages"]).alias("content_hash"))
    scored, _ = score_examples(df, ScoreSettings(min_quality=float("-inf")))
    return scored.select("example_id", "source", "date", "source_id", "messages", "metadata", "collected_at",
                         "content_hash", "quality_score", "score_detail", "teacher", "judged_score")


def distill_partition(con: "duckdb.DuckDBPyConnection", day: date, source: str, settings: DistillSettings, *,
                      env: Mapping[str, str] | None = None, log: Any = None, sleep: Callable[[float], None] = time.sleep,
                      teacher_clients: Mapping[str, "openai.OpenAI"] | None = None,
                      judge: "openai.OpenAI | None" = None) -> DistillReport:
    """Distill one (day, source) partition of corpus.scored_examples; see the module docstring."""
    log = log or logger
    report = DistillReport(day=str(day), source=source, mode=settings.mode, threshold=settings.judge.threshold)
    used = referenced(list(settings.teachers), settings.routing)
    if settings.mode == "online":
        check_configured(used, env)  # before anything is read or paid
    scored = con.execute("SELECT example_id, source, date, source_id, messages FROM corpus.scored_examples "
                         "WHERE date = ? AND source = ? ORDER BY example_id", [day, source]).pl()
    inst = instructions_frame(scored)
    if settings.max_instructions:
        inst = inst.head(settings.max_instructions)
    report.instructions = inst.height
    report.categories = dict(sorted(inst.group_by("category").len().iter_rows()))
    models = pl.DataFrame({"teacher": [t.name for t in settings.teachers], "model": [t.model for t in settings.teachers]},
                          schema={"teacher": pl.Utf8, "model": pl.Utf8})
    pairs = route(inst, settings.routing).join(models, on="teacher", how="left")
    report.unrouted = inst.height - pairs["instruction_hash"].n_unique() if pairs.height else inst.height
    report.pairs = pairs.height
    existing = _existing(con, pairs) if pairs.height else pl.DataFrame(schema=ANSWER_SCHEMA)
    prior = {(r["instruction_hash"], r["teacher"], r["model"]): r for r in existing.to_dicts()}

    if settings.mode == "batch":
        _ingest_batch(con, pairs, prior, settings, report, log)
        existing = _existing(con, pairs) if pairs.height else existing
        prior = {(r["instruction_hash"], r["teacher"], r["model"]): r for r in existing.to_dicts()}
    done_status = [OK] if settings.retry_errors else [OK, ERROR]
    answered = existing.filter(pl.col("status").is_in(done_status)).select(_KEY)
    todo = pairs.join(answered, on=list(_KEY), how="anti")
    report.reused = pairs.height - todo.height
    outstanding = _outstanding(settings.batch_dir)
    if outstanding:
        ids = todo.select(pl.concat_str(list(_KEY), separator=":").alias("cid"))["cid"]
        waiting = ids.is_in(list(outstanding))
        report.awaiting_batch = int(waiting.sum())
        todo = todo.filter(~waiting)
        if report.awaiting_batch:
            log.warning(f"{report.awaiting_batch} pairs await results of batch request files in {settings.batch_dir}; "
                        "they are not asked again (delete a request file to give up on it)")
    if settings.mode == "online":
        _ask_online(con, todo, prior, settings, report, env=env, log=log, sleep=sleep, clients=teacher_clients)
    else:
        _write_batch(todo, settings, report)

    everything = _existing(con, pairs) if pairs.height else pl.DataFrame(schema=ANSWER_SCHEMA)
    ok = everything.filter(pl.col("status") == OK)
    judged = _judge(con, ok, settings, report, log, judge, sleep)
    winners = select_winners(judged, settings.judge.threshold, keep_truncated=settings.keep_truncated)
    routed = set(pairs["instruction_hash"].to_list())
    report.no_judged_answer = len(routed - set(winners["instruction_hash"].to_list()))
    owned = _owned_elsewhere(con, inst, day, source) if inst.height else set()
    report.owned_elsewhere = len(owned & set(winners["instruction_hash"].to_list()))
    winners = winners.filter(~pl.col("instruction_hash").is_in(list(owned)))
    report.kept = int(winners["kept"].sum()) if winners.height else 0
    report.below_threshold = winners.height - report.kept
    for w in winners.to_dicts():
        stats = report.teachers.setdefault(w["teacher"], TeacherStats())
        stats.wins += 1
        stats.kept += int(w["kept"])
    rows = _distilled_rows(inst, winners, everything.drop("judged_score", "judge_dimensions").join(
        judged.select(*_KEY, "judged_score", "judge_dimensions"), on=list(_KEY), how="left"), settings, day, source)
    replace_rows(con, [("distilled_examples", rows, "date = ? AND source = ?", [day, source])])
    report.cost_usd = float(sum((Decimal(str(s.cost_usd)) for s in report.teachers.values()), Decimal(0)))
    totals = con.execute("SELECT teacher, model, sum(cost_usd) FROM corpus.teacher_answers GROUP BY ALL").fetchall()
    for name, model, total in totals:
        if name in {t.name for t in settings.teachers} and model == settings.teacher(name).model:
            report.teachers.setdefault(name, TeacherStats()).cost_usd_total = float(total or 0.0)
    log.info(f"distill {source} {day} ({settings.mode}): {report.instructions} instructions, {report.pairs} pairs, "
             f"{report.asked} asked, {report.reused} reused, {report.errors} errors, {report.judged} judged, "
             f"{report.kept} kept (>= {settings.judge.threshold}), ${report.cost_usd:.6f} teachers this run")
    return report
