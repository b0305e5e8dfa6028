"""Teachers (any OpenAI-compatible endpoint and model), the category classifier and the routing between them.

A teacher is configured as JSON (name, base_url, model, api_key_env, prices per million tokens, and
optionally its system prompt, temperature and max_tokens). Only the *name* of the environment variable
holding the key is configured: the key is read when a client is made and never stored or logged. A
teacher that routing refers to but that lacks its base_url or its key fails before anything is paid,
with a message that names the teacher and the variable.

Instructions are routed by category. The classifier is a handful of vectorized regexes in Polars
(code, math, writing, else general): cheap, transparent, and easy to override through the routing
table, which maps category -> teacher names ("*" for every category without its own entry).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

import polars as pl

from corpus_platform.sources.policy import BackoffPolicy, RateLimiter, RetriesExhausted, retry
from corpus_platform.sources.synthetic import classify_openai_error  # one classification of openai errors

if TYPE_CHECKING:
    import openai

CATEGORIES = ("code", "math", "writing", "general")
# First match wins, in this order; anything unmatched is "general".
CATEGORY_PATTERNS: dict[str, str] = {
    "code": (
        r"(?i)```|\bdef\s+\w+\s*\(|\bfunction\s*\w*\s*\(|#include\b|\bSELECT\b.+\bFROM\b|=>|\w+\(\)|"
        r"\b(python|javascript|typescript|java|c\+\+|c#|golang|rust|ruby|php|kotlin|swift|sql|html|css|bash|shell "
        r"script|powershell|regex|regular expression|code|coding|program|programming|script|function|method|class|"
        r"compile|compiler|debug|bug|stack ?trace|exception|api|json|yaml|algorithm|recursion|recursive|array|"
        r"linked list|hash ?map|dictionary in python|variable|loop|git|docker|kubernetes|unit test)\b"
    ),
    "math": (
        r"(?i)\d\s*[-+*/^×÷]\s*\d|\d\s*=\s*\d|\bconvert\s+-?\d|\d\s*(?:%|percent\b)|\b(math|maths|mathematics|calculate|compute|solve|equation|integral|"
        r"derivative|probability|percent|percentage|sum of|product of|average|mean of|median|fraction|divided by|"
        r"multiply|multiplied|plus|minus|square root|prime number|factorial|arithmetic|algebra|geometry|"
        r"how many \w+ (?:are|does|do|did|will|would|can) )"
    ),
    "writing": (
        r"(?i)\b(write|compose|draft|create)\b.{0,40}\b(poem|story|essay|letter|e-?mail|song|haiku|limerick|tweet|"
        r"blog post|speech|slogan|tagline|product description|cover letter)\b|\b(poem|haiku|limerick|short story)\b"
    ),
}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TeacherNotConfigured(RuntimeError):
    """A teacher that routing uses lacks its endpoint or its key; nothing was sent."""


class TeacherUnavailable(RuntimeError):
    """A teacher refuses every call (bad key, no permission, unknown model, no quota): stop the run."""


@dataclass(frozen=True)
class Teacher:
    name: str
    base_url: str
    model: str
    api_key_env: str = ""  # the environment variable that holds the key; "" = a local server that needs none
    price_input_per_mtok: float = 0.0  # USD per million prompt tokens
    price_output_per_mtok: float = 0.0  # USD per million completion tokens
    system_prompt: str = ""
    temperature: float = 0.7
    seed: int | None = None  # sent when set (servers that honour it sample repeatably)
    max_tokens: int = 1024
    max_tokens_param: str = "max_tokens"  # "max_completion_tokens" for OpenAI reasoning models
    requests_per_minute: float | None = None
    timeout_s: float = 120.0
    batch_price_factor: float = 0.5  # the OpenAI Batch API bills half the online price

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"teacher name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"teacher '{self.name}' has no model")

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> Decimal:
        total = (Decimal(str(self.price_input_per_mtok)) * prompt_tokens
                 + Decimal(str(self.price_output_per_mtok)) * completion_tokens) / Decimal(1_000_000)
        return total * Decimal(str(self.batch_price_factor)) if batch else total

    def messages(self, instruction: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": instruction}]

    def request_body(self, instruction: str) -> dict[str, Any]:
        """The chat-completions body for one instruction (online and in Batch API files alike)."""
        body = {"model": self.model, "messages": self.messages(instruction), "temperature": self.temperature,
                self.max_tokens_param: self.max_tokens}
        return body if self.seed is None else {**body, "seed": self.seed}

    def api_key(self, env: Mapping[str, str] | None = None) -> str:
        """The key from the environment; TeacherNotConfigured names the teacher and the variable."""
        env = os.environ if env is None else env
        if not self.base_url:
            raise TeacherNotConfigured(f"teacher '{self.name}' has no base_url (its OpenAI-compatible endpoint, "
                                       "e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)")
        if not self.api_key_env:
            return "not-needed"  # local servers accept any key; the openai client insists on one
        key = env.get(self.api_key_env, "")
        if not key:
            raise TeacherNotConfigured(f"teacher '{self.name}' needs its API key in ${self.api_key_env}, which is not set")
        return key

    def client(self, env: Mapping[str, str] | None = None) -> "openai.OpenAI":
        import openai

        return openai.OpenAI(api_key=self.api_key(env), base_url=self.base_url, max_retries=0, timeout=self.timeout_s)


_FIELDS = {f.name for f in fields(Teacher)}


def parse_teachers(spec: str | list[dict[str, Any]]) -> list[Teacher]:
    """Teachers from JSON (a list of objects), "@path" to a JSON file, or a list of dicts."""
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("@"):
            text = open(os.path.expanduser(text[1:]), encoding="utf-8").read()
        try:
            spec = json.loads(text) if text else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"teachers is not valid JSON: {exc}") from None
    if not isinstance(spec, list) or not all(isinstance(t, dict) for t in spec):
        raise ValueError("teachers must be a JSON list of objects")
    out: list[Teacher] = []
    for i, raw in enumerate(spec):
        unknown = set(raw) - _FIELDS
        if unknown:
            raise ValueError(f"teacher {raw.get('name', i)!r}: unknown field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
        if "api_key" in raw:
            raise ValueError("teachers hold api_key_env (the variable's name), never the key itself")
        out.append(Teacher(**raw))
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"teacher names must be unique: {dupes}")
    return out


def parse_routing(spec: str | Mapping[str, Any] | None, teachers: list[Teacher]) -> dict[str, list[str]]:
    """{category: [teacher names]}; empty means every teacher for every category ("*")."""
    if isinstance(spec, str):
        spec = json.loads(spec) if spec.strip() else {}
    spec = dict(spec or {})
    if not spec:
        return {"*": [t.name for t in teachers]}
    known = {t.name for t in teachers}
    routing: dict[str, list[str]] = {}
    for category, names in spec.items():
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"routing for '{category}' names unknown teacher(s) {missing}; configured: {sorted(known)}")
        routing[str(category)] = list(dict.fromkeys(names))
    return routing


def referenced(teachers: list[Teacher], routing: Mapping[str, list[str]]) -> list[Teacher]:
    used = {n for names in routing.values() for n in names}
    return [t for t in teachers if t.name in used]


def check_configured(teachers: list[Teacher], env: Mapping[str, str] | None = None) -> None:
    """Fail before anything is sent when a teacher lacks its base_url or key, naming every such teacher."""
    problems = []
    for t in teachers:
        try:
            t.api_key(env)
        except TeacherNotConfigured as exc:
            problems.append(str(exc))
    if problems:
        raise TeacherNotConfigured("; ".join(problems))


def category_expr(text: pl.Expr) -> pl.Expr:
    """The category of each instruction (code, math, writing, general), as one vectorized expression."""
    text = text.fill_null("")
    out = pl.lit("general")
    for category in reversed(list(CATEGORY_PATTERNS)):  # built inside out so the first pattern wins
        out = pl.when(text.str.contains(CATEGORY_PATTERNS[category])).then(pl.lit(category)).otherwise(out)
    return out


def classify(instructions: pl.Series | list[str]) -> pl.Series:
    return pl.DataFrame({"i": instructions}, schema={"i": pl.Utf8}).select(
        category_expr(pl.col("i")).alias("category"))["category"]


def route(frame: pl.DataFrame, routing: Mapping[str, list[str]]) -> pl.DataFrame:
    """One row per (instruction, teacher): `frame` (with a `category` column) exploded over its teachers.
    Categories without a route (and no "*") get no rows."""
    table = pl.DataFrame(
        [{"category": c, "teacher": n} for c, names in routing.items() if c != "*" for n in names],
        schema={"category": pl.Utf8, "teacher": pl.Utf8},
    )
    routed = frame.join(table, on="category", how="inner")
    default = routing.get("*")
    if default:
        rest = frame.filter(~pl.col("category").is_in(table["category"].unique().implode()))
        rest = rest.join(pl.DataFrame({"teacher": default}, schema={"teacher": pl.Utf8}), how="cross")
        routed = pl.concat([routed, rest], how="vertical_relaxed")
    return routed


@dataclass
class Answer:
    """One teacher's outcome for one instruction: an answer (status 'ok') or an error with its reason."""

    status: str  # ok | error
    content: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = False
    attempts: int = 0
    error: str | None = None
    response_model: str | None = None  # what the server says it ran (e.g. a dated snapshot)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_completion(body: Any) -> Answer:
    """An Answer from a chat.completion body (online responses and Batch API output lines alike)."""
    usage = body.get("usage") if isinstance(body, dict) and isinstance(body.get("usage"), dict) else {}
    pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    base = dict(prompt_tokens=pt, completion_tokens=ct, usage_reported=bool(usage),
                response_model=body.get("model") if isinstance(body, dict) else None)
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    message = choice.get("message") if choice else None
    if not isinstance(message, dict):
        return Answer("error", error="response has no choices[0].message", **base)
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        refusal = message.get("refusal")
        reason = f"model refused: {refusal}" if refusal else "model returned no content"
        return Answer("error", error=reason, finish_reason=choice.get("finish_reason"), **base)
    return Answer("ok", content=content.strip(), finish_reason=choice.get("finish_reason"), **base)


_FATAL_STATUS = {401, 403, 404}


def ask(teacher: Teacher, client: "openai.OpenAI", instruction: str, *, policy: BackoffPolicy,
        limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[int, Exception, float], None] | None = None, secret: str = "") -> Answer:
    """Ask one teacher one instruction, retrying 429/5xx/timeouts under `policy` (Retry-After honoured).

    Returns Answer('error', reason) when retries run out or the server rejects this request (400, 422...);
    raises TeacherUnavailable when the teacher refuses every call (401/403/404, insufficient_quota)."""
    import openai

    attempts = 0
    body = teacher.request_body(instruction)

    def redact(text: str) -> str:
        return text.replace(secret, "***") if secret and secret not in ("not-needed",) else text

    def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        raw = client.chat.completions.with_raw_response.create(**body)
        return json.loads(raw.text)

    failure: Exception | None = None
    result: Answer | None = None
    try:
        doc = retry(attempt, policy, classify=classify_openai_error, limiter=limiter, sleep=sleep, on_retry=on_retry)
    except RetriesExhausted as exc:
        result = Answer("error", error=redact(str(exc)), attempts=attempts)
    except openai.APIStatusError as exc:
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        message = redact(f"HTTP {exc.status_code} from teacher '{teacher.name}' ({teacher.model}): {exc.message}")
        if exc.status_code in _FATAL_STATUS or code == "insufficient_quota":
            failure = TeacherUnavailable(message)
        else:
            result = Answer("error", error=message, attempts=attempts)
    except openai.OpenAIError as exc:
        result = Answer("error", error=redact(f"{type(exc).__name__}: {exc}"), attempts=attempts)
    if failure is not None:
        raise failure  # outside `except`: the client's exception (its request holds the key) is not chained
    if result is not None:
        return result
    answer = parse_completion(doc)
    answer.attempts = attempts
    return answer
