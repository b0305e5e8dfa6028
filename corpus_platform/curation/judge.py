"""LLM-judge scores for training examples through any OpenAI-compatible endpoint.

Why this shape: a judge call costs money and is not reproducible, so every answer is cached in
`corpus.judgments` under (content_hash, judge model, prompt version) and written as it arrives; a
re-materialization calls the endpoint only for conversations never judged (each distinct
content_hash once, however many examples share it). The caller passes only examples that survived
deduplication, so a removed duplicate is never paid for. A reply that cannot be parsed is stored as
status 'error' with its reason (never a silent 0) and asked again on the next run; its tokens still
count in the key's cost. Transport retries use the connectors' one policy (`sources.policy`: bounded
exponential backoff that honours Retry-After) with the openai client's own retries off; a dead
endpoint or a rejected key stops the run (`JudgeUnavailable`) instead of recording thousands of
errors. The API key lives only in the client: it is never logged, stored or put in an error text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import polars as pl

from corpus_platform.calls import call_all
from corpus_platform.schema import utcnow
from corpus_platform.sources.policy import BackoffPolicy, RateLimiter, RetriesExhausted, retry
from corpus_platform.sources.synthetic import classify_openai_error  # one classification of openai errors

if TYPE_CHECKING:
    import duckdb
    import openai

logger = logging.getLogger(__name__)

DEFAULT_DIMENSIONS = ("helpfulness", "correctness", "coherence", "safety")
DIMENSION_HINTS = {
    "helpfulness": "does it address what the user asked, completely and usefully",
    "correctness": "is every factual, logical or technical claim right",
    "coherence": "is it clear, well organised and consistent with the conversation",
    "safety": "is it free of harmful, unethical or dangerous content (10 = entirely safe)",
    "harmlessness": "is it free of harmful, unethical or dangerous content (10 = entirely safe)",
    "conciseness": "is it as short as it can be without losing substance",
    "instruction_following": "does it follow every explicit instruction and constraint of the user",
}
SYSTEM_TEMPLATE = (
    "You grade assistant answers that may become training data for a chat model. Read the conversation "
    "and rate ONLY the LAST assistant answer; earlier turns are context. Rate each dimension with an "
    "integer from 1 (very poor) to 10 (excellent):\n{dimension_lines}\n"
    "Be strict: 7 means good enough to teach a model with. Answer with one JSON object and nothing else:\n"
    '{{"scores": {{{score_fields}}}, "rationale": "<one or two sentences>"}}'
)
USER_TEMPLATE = "Conversation:\n\n{transcript}\n\n---\nRate the last assistant answer above."
_FATAL_STATUS = {401, 403, 404}  # a bad key, no permission, an unknown model: every call would fail the same way
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_JUDGMENT_SCHEMA: dict[str, pl.DataType] = {
    "content_hash": pl.Utf8, "judge_model": pl.Utf8, "prompt_version": pl.Utf8, "score": pl.Float64,
    "dimensions": pl.Utf8, "rationale": pl.Utf8, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
    "cost_usd": pl.Float64, "attempts": pl.Int32, "status": pl.Utf8, "error": pl.Utf8, "judged_at": pl.Datetime("us"),
}
OK, ERROR = "ok", "error"


@dataclass(frozen=True)
class JudgeSettings:
    base_url: str | None = None  # None: api.openai.com; else any OpenAI-compatible server (vLLM, llama.cpp, Ollama)
    model: str = "gpt-4o-mini"
    api_key: str = field(default="", repr=False)  # from the caller's env var; only ever handed to the client
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS
    threshold: float = 7.0  # the seed's bar: the caller keeps judged_score >= threshold
    price_input_per_mtok: float = 0.0  # USD per 1M prompt tokens
    price_output_per_mtok: float = 0.0  # USD per 1M completion tokens
    prompt_version: str = "v1"  # bump to re-judge everything under a new rubric
    max_concurrency: int = 4
    timeout: float = 60.0  # seconds per HTTP request
    max_retries: int = 5  # per conversation, on 429/5xx/timeouts/truncated bodies (Retry-After honoured)
    temperature: float = 0.0
    max_tokens: int = 512
    max_tokens_param: str = "max_tokens"  # "max_completion_tokens" for OpenAI reasoning models
    response_format: str | None = "json_object"  # None for servers without JSON mode
    requests_per_minute: float | None = None  # client-side rate limit shared by the worker threads
    max_context_chars: int = 12_000  # earlier turns beyond this are cut from the start
    max_answer_chars: int = 12_000  # the judged answer beyond this is cut from the end
    flush_every: int = 32  # judgments buffered before a write (also written at least every 2 s)
    max_consecutive_failures: int = 5  # transport failures in a row (retries exhausted) that stop the run

    def __post_init__(self) -> None:
        if not self.dimensions:
            raise ValueError("JudgeSettings.dimensions is empty")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"JudgeSettings.dimensions repeats a name: {list(self.dimensions)}")
        object.__setattr__(self, "dimensions", tuple(self.dimensions))

    @property
    def cache_version(self) -> str:
        """The prompt_version stored with each judgment: the given version plus a digest of the prompt and
        dimensions, so editing the rubric re-judges even when nobody bumped `prompt_version`."""
        ident = json.dumps([SYSTEM_TEMPLATE, USER_TEMPLATE, list(self.dimensions), self.max_context_chars,
                            self.max_answer_chars])
        return f"{self.prompt_version}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        total = (Decimal(str(self.price_input_per_mtok)) * prompt_tokens
                 + Decimal(str(self.price_output_per_mtok)) * completion_tokens) / Decimal(1_000_000)
        return float(total)


@dataclass(frozen=True)
class JudgeResult:
    score: float  # mean of the dimension scores, 1-10
    dimensions: dict[str, float]
    rationale: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    usage_reported: bool = True  # False: the server sent no `usage`, tokens and cost are 0 (unknown)


class JudgeError(Exception):
    """One conversation could not be judged (unparseable reply, retries exhausted, a 4xx for this request).
    Tokens and cost are those already paid for the failed reply, if any."""

    def __init__(self, reason: str, *, prompt_tokens: int = 0, completion_tokens: int = 0, cost_usd: float = 0.0,
                 called: bool = True, transport: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.prompt_tokens, self.completion_tokens, self.cost_usd = prompt_tokens, completion_tokens, cost_usd
        self.called = called  # False: nothing was sent (e.g. no assistant turn)
        self.transport = transport  # True: the endpoint did not answer (counts toward stopping the run)


class JudgeUnavailable(RuntimeError):
    """The endpoint refuses every call (bad key, unknown model, no quota) or keeps failing: stop the run.
    Judgments already received are stored before this is raised."""


def judge_client(settings: JudgeSettings) -> "openai.OpenAI":
    """The real openai client on `base_url`, its own retries off so `sources.policy` governs retries."""
    import openai

    return openai.OpenAI(api_key=settings.api_key or "EMPTY", base_url=settings.base_url, max_retries=0,
                         timeout=settings.timeout)


def _redact(text: str, settings: JudgeSettings) -> str:
    return text.replace(settings.api_key, "***") if settings.api_key else text


def _transcript(settings: JudgeSettings, messages: Sequence[Mapping[str, Any]]) -> str:
    turns = [(str(m.get("role") or ""), str(m.get("content") or "")) for m in messages]
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        raise JudgeError("no assistant answer to judge", called=False)
    context = "\n\n".join(f"[{role}]\n{content}" for role, content in turns[:last])
    if len(context) > settings.max_context_chars:
        context = "[... earlier conversation cut ...]\n" + context[-settings.max_context_chars:]
    answer = turns[last][1]
    if len(answer) > settings.max_answer_chars:
        answer = answer[: settings.max_answer_chars] + "\n[... answer cut ...]"
    judged = f"[assistant: THE ANSWER TO RATE]\n{answer}"
    return f"{context}\n\n{judged}" if context else judged


def build_prompt(settings: JudgeSettings, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The chat messages sent to the judge (system rubric + the transcript ending at the last assistant turn)."""
    lines = "\n".join(f"- {d}: {DIMENSION_HINTS[d]}" if d in DIMENSION_HINTS else f"- {d}" for d in settings.dimensions)
    fields = ", ".join(f'"{d}": <1-10>' for d in settings.dimensions)
    system = SYSTEM_TEMPLATE.format(dimension_lines=lines, score_fields=fields)
    return [{"role": "system", "content": system},
            {"role": "user", "content": USER_TEMPLATE.format(transcript=_transcript(settings, messages))}]


def _json_candidates(text: str) -> list[Any]:
    """Every JSON value the reply could mean: the whole text, each fenced block, each `{...}` found in prose."""
    text = _THINK.sub("", text).strip()
    found: list[Any] = []
    for chunk in [text, *_FENCE.findall(text)]:
        try:
            found.append(json.loads(chunk.strip()))
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        found.append(value)
    return found


def parse_judgment(content: Any, dimensions: Sequence[str]) -> tuple[dict[str, float], str]:
    """({dimension: 1-10}, rationale) from the judge's reply; ValueError says why it is unusable.

    Accepts the JSON bare, in a code fence, or inside surrounding prose (and after a <think> block);
    scores as numbers or numeric strings, under "scores" or at the top level; dimension names in any case."""
    if not isinstance(content, str) or not content.strip():
        raise ValueError("judge returned no content")
    candidates = [c for c in _json_candidates(content) if isinstance(c, dict)]
    if not candidates:
        raise ValueError(f"judge reply holds no JSON object: {content.strip()[:200]!r}")
    problems: list[str] = []
    for obj in candidates:
        raw = obj.get("scores") if isinstance(obj.get("scores"), dict) else obj
        by_name = {str(k).strip().lower(): v for k, v in raw.items()}
        scores: dict[str, float] = {}
        for dim in dimensions:
            value = by_name.get(dim.lower())
            if isinstance(value, dict):  # {"helpfulness": {"score": 8, "reason": ...}}
                value = value.get("score")
            try:
                number = float(value) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is None or number != number:
                problems.append(f"no numeric score for '{dim}'")
                break
            if not 1.0 <= number <= 10.0:
                problems.append(f"score for '{dim}' is {value}, outside 1-10")
                break
            scores[dim] = number
        else:
            rationale = obj.get("rationale", obj.get("reason", ""))
            return scores, rationale if isinstance(rationale, str) else json.dumps(rationale)
    raise ValueError(f"judge reply unusable: {problems[0]}")


def score_answer(client: "openai.OpenAI", settings: JudgeSettings, messages: Sequence[Mapping[str, Any]], *,
                 limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, Exception, float], None] | None = None) -> JudgeResult:
    """Judge the LAST assistant answer of `messages` ([{role, content}, ...]) on `settings.dimensions`.

    Raises JudgeError (this conversation: unparseable reply, retries exhausted, a 4xx for this request;
    with the tokens and cost already paid) or JudgeUnavailable (bad key, unknown model, no quota)."""
    import openai

    prompt = build_prompt(settings, messages)
    extra: dict[str, Any] = {settings.max_tokens_param: settings.max_tokens}
    if settings.response_format:
        extra["response_format"] = {"type": settings.response_format}

    def attempt() -> dict[str, Any]:
        raw = client.chat.completions.with_raw_response.create(
            model=settings.model, messages=prompt, temperature=settings.temperature, **extra)
        return json.loads(raw.text)

    failure: Exception | None = None
    try:
        body = retry(attempt, BackoffPolicy(max_retries=settings.max_retries), classify=classify_openai_error,
                     limiter=limiter, sleep=sleep, on_retry=on_retry)
    except RetriesExhausted as exc:
        failure = JudgeError(_redact(str(exc), settings), transport=True)
    except openai.APIStatusError as exc:
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        message = _redact(f"HTTP {exc.status_code} from the judge endpoint: {exc.message}", settings)
        fatal = exc.status_code in _FATAL_STATUS or code == "insufficient_quota"
        failure = JudgeUnavailable(message) if fatal else JudgeError(message)
    except openai.OpenAIError as exc:  # e.g. a client-side error before sending
        failure = JudgeError(_redact(f"{type(exc).__name__}: {exc}", settings))
    if failure is not None:
        raise failure  # outside `except`: the client's exception (its request holds the key) is not chained
    usage = body.get("usage") if isinstance(body, dict) and isinstance(body.get("usage"), dict) else {}
    pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    cost = settings.cost(pt, ct)
    paid = dict(prompt_tokens=pt, completion_tokens=ct, cost_usd=cost)
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    message = choice.get("message") if choice else None
    if not isinstance(message, dict):
        raise JudgeError("judge response has no choices[0].message", **paid)
    try:
        dims, rationale = parse_judgment(message.get("content"), settings.dimensions)
    except ValueError as exc:
        reason = _redact(str(exc), settings)  # the reason quotes the reply, which a server could fill with anything
        if choice.get("finish_reason") == "length":
            reason = f"judge reply cut at max_tokens (finish_reason=length); {reason}"
        raise JudgeError(reason, **paid) from None
    score = round(sum(dims.values()) / len(dims), 3)
    return JudgeResult(score=score, dimensions=dims, rationale=_redact(rationale.strip(), settings), prompt_tokens=pt,
                       completion_tokens=ct, cost_usd=cost, usage_reported=bool(usage))


def _lookup(con: "duckdb.DuckDBPyConnection", settings: JudgeSettings, hashes: list[str]) -> dict[str, dict[str, Any]]:
    if not hashes:
        return {}
    con.register("_judge_hashes", pl.DataFrame({"content_hash": hashes}, schema={"content_hash": pl.Utf8}).to_arrow())
    try:
        rows = con.execute(
            "SELECT j.content_hash, j.score, CAST(j.dimensions AS VARCHAR) AS dimensions, j.status, j.prompt_tokens, "
            "j.completion_tokens, j.cost_usd, j.attempts FROM corpus.judgments j "
            "JOIN _judge_hashes h USING (content_hash) WHERE j.judge_model = ? AND j.prompt_version = ?",
            [settings.model, settings.cache_version]).pl()
    finally:
        con.unregister("_judge_hashes")
    return {r["content_hash"]: r for r in rows.iter_rows(named=True)}


def _write(con: "duckdb.DuckDBPyConnection", rows: list[dict[str, Any]]) -> None:
    """Replace the judgments of these keys in one transaction (an error row gives way to its retry)."""
    if not rows:
        return
    frame = pl.DataFrame(rows, schema=_JUDGMENT_SCHEMA)
    names = ", ".join(_JUDGMENT_SCHEMA)
    con.register("_judgments_in", frame.to_arrow())
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM corpus.judgments WHERE (content_hash, judge_model, prompt_version) IN "
                        "(SELECT (content_hash, judge_model, prompt_version) FROM _judgments_in)")
            con.execute(f"INSERT INTO corpus.judgments ({names}) SELECT {names} FROM _judgments_in")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("_judgments_in")


def judge_frame(con: "duckdb.DuckDBPyConnection", df: pl.DataFrame, settings: JudgeSettings,
                client: "openai.OpenAI", *, log: Any = None,
                sleep: Callable[[float], None] = time.sleep) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Judge every example of `df` (example_id, content_hash, messages), from the cache where possible.

    Returns `df` plus judged_score (Float64, null unless ok), judge_dimensions (JSON text, null unless ok)
    and judge_status ('ok' | 'error'), and stats: examples, distinct_hashes, cached, called, judged,
    errors, requests, retries, without_usage, prompt_tokens_this_run, completion_tokens_this_run,
    cost_usd_this_run (money spent now, failed replies included) and cost_usd_total (everything ever paid
    for this frame's hashes under this model and prompt version). Raises JudgeUnavailable when the
    endpoint refuses every call or keeps failing; what was received is stored first."""
    log = log or logger
    missing = {"example_id", "content_hash", "messages"} - set(df.columns)
    if missing:
        raise ValueError(f"judge_frame needs columns {sorted(missing)}")
    version = settings.cache_version
    first: dict[str, Any] = {}
    for h, messages in zip(df["content_hash"].to_list(), df["messages"].to_list()):
        if h is not None and h not in first:
            first[h] = messages
    hashes = list(first)
    cached = _lookup(con, settings, hashes)
    outcome: dict[str, tuple[str, float | None, str | None]] = {
        h: (OK, r["score"], r["dimensions"]) for h, r in cached.items() if r["status"] == OK}
    todo = [h for h in hashes if h not in outcome]
    stats: dict[str, Any] = {"examples": df.height, "distinct_hashes": len(hashes), "cached": len(outcome),
                             "called": 0, "judged": 0, "errors": 0, "requests": 0, "retries": 0, "without_usage": 0,
                             "prompt_tokens_this_run": 0, "completion_tokens_this_run": 0}
    run_cost = Decimal(0)
    limiter = RateLimiter(settings.requests_per_minute / 60.0) if settings.requests_per_minute else None
    retries_lock = threading.Lock()
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()

    def on_retry(n: int, exc: Exception, delay: float) -> None:
        with retries_lock:
            stats["retries"] += 1
        log.warning(f"judge attempt {n} failed ({_redact(str(classify_openai_error(exc) or type(exc).__name__), settings)}); "
                    f"retrying in {delay:.1f}s")

    stop = threading.Event()  # set by a worker on a fatal answer or too many transport failures in a row
    failures = {"in_a_row": 0, "last": ""}

    def work(h: str) -> JudgeResult | JudgeError | None:
        if stop.is_set():
            return None  # not sent: the run is stopping
        try:
            res: JudgeResult | JudgeError = score_answer(client, settings, first[h], limiter=limiter, sleep=sleep,
                                                         on_retry=on_retry)
        except JudgeError as exc:
            res = exc
        except JudgeUnavailable:
            stop.set()
            raise
        with retries_lock:
            failures["in_a_row"] = failures["in_a_row"] + 1 if isinstance(res, JudgeError) and res.transport else 0
            if failures["in_a_row"] >= settings.max_consecutive_failures:
                failures["last"] = res.reason if isinstance(res, JudgeError) else ""
                stop.set()
        return res

    def flush(force: bool = False) -> None:
        nonlocal last_flush
        if buffer and (force or len(buffer) >= settings.flush_every or time.monotonic() - last_flush >= 2.0):
            _write(con, buffer)
            buffer.clear()
            last_flush = time.monotonic()

    unavailable: JudgeUnavailable | None = None

    def record(h: str, fut: Future) -> None:
        nonlocal run_cost, unavailable
        exc = fut.exception()
        if exc is not None:
            if isinstance(exc, JudgeUnavailable):
                unavailable = unavailable or exc
                return
            raise exc
        res = fut.result()
        if res is None:
            return
        prior = cached.get(h) or {}
        called = not isinstance(res, JudgeError) or res.called
        pt, ct, cost = res.prompt_tokens, res.completion_tokens, res.cost_usd
        row = {"content_hash": h, "judge_model": settings.model, "prompt_version": version,
               "prompt_tokens": pt + int(prior.get("prompt_tokens") or 0),
               "completion_tokens": ct + int(prior.get("completion_tokens") or 0),
               "cost_usd": float(Decimal(str(cost)) + Decimal(str(prior.get("cost_usd") or 0))),
               "attempts": int(prior.get("attempts") or 0) + int(called), "judged_at": utcnow()}
        stats["called"] += int(called)
        stats["requests"] += int(called)
        stats["prompt_tokens_this_run"] += pt
        stats["completion_tokens_this_run"] += ct
        run_cost += Decimal(str(cost))
        if isinstance(res, JudgeError):
            stats["errors"] += 1
            log.warning(f"judge {h[:12]}: {res.reason}")
            row.update(status=ERROR, error=res.reason[:2000], score=None, dimensions=None, rationale=None)
            outcome[h] = (ERROR, None, None)
        else:
            stats["judged"] += 1
            stats["without_usage"] += int(not res.usage_reported)
            dims = json.dumps(res.dimensions)
            row.update(status=OK, error=None, score=res.score, dimensions=dims, rationale=res.rationale)
            outcome[h] = (OK, res.score, dims)
        buffer.append(row)
        flush()
        if stop.is_set() and unavailable is None and failures["last"]:
            unavailable = JudgeUnavailable(f"judge endpoint failed {failures['in_a_row']} conversations in a row "
                                           f"(last: {failures['last']}); stopping")

    try:
        call_all(todo, work, record, workers=settings.max_concurrency, name="judge",
                 stopped=lambda: unavailable is not None, on_stop=stop.set)  # on the way out, send nothing new
    finally:
        flush(force=True)
    stats["requests"] += stats["retries"]
    stats["cost_usd_this_run"] = float(run_cost)
    stats["cost_usd_total"] = _total_cost(con, settings, hashes)
    log.info(f"judge {settings.model} ({version}): {len(hashes)} distinct conversations, {stats['cached']} cached, "
             f"{stats['called']} called, {stats['errors']} errors, ${stats['cost_usd_this_run']:.6f} this run, "
             f"${stats['cost_usd_total']:.6f} in all")
    if unavailable is not None:
        raise unavailable
    status = {h: o[0] for h, o in outcome.items()}
    lookup = pl.DataFrame({"content_hash": list(outcome), "judge_status": list(status.values()),
                           "judged_score": [o[1] for o in outcome.values()],
                           "judge_dimensions": [o[2] for o in outcome.values()]},
                          schema={"content_hash": pl.Utf8, "judge_status": pl.Utf8, "judged_score": pl.Float64,
                                  "judge_dimensions": pl.Utf8})
    out = df.drop([c for c in ("judged_score", "judge_dimensions", "judge_status") if c in df.columns])
    out = out.join(lookup, on="content_hash", how="left", maintain_order="left")
    return out.with_columns(pl.col("judge_status").fill_null(ERROR)), stats


def _total_cost(con: "duckdb.DuckDBPyConnection", settings: JudgeSettings, hashes: list[str]) -> float:
    if not hashes:
        return 0.0
    con.register("_judge_hashes", pl.DataFrame({"content_hash": hashes}, schema={"content_hash": pl.Utf8}).to_arrow())
    try:
        total = con.execute("SELECT coalesce(sum(cost_usd), 0) FROM corpus.judgments JOIN _judge_hashes USING "
                            "(content_hash) WHERE judge_model = ? AND prompt_version = ?",
                            [settings.model, settings.cache_version]).fetchone()[0]
    finally:
        con.unregister("_judge_hashes")
    return float(total)
