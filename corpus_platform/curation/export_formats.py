"""The per-format pieces of an export: OpenAI chat validation, record builders and file writers.

Every writer takes one split's rows already sorted by example_id and writes bytes that depend only on
those rows (no timestamps, paths or pids), so the same rows always give the same files.

Formats (directory / file per split):
- `openai_chat/<split>.jsonl`  `{"messages": [{"role", "content"}, ...]}` per line (validated)
- `alpaca/<split>.json`        `[{"instruction", "input", "output", "system"?, "history"?}]`
- `sharegpt/<split>.json`      `[{"id", "conversations": [{"from": system|human|gpt, "value"}]}]`
- `qwen3_text/<split>.jsonl`   `{"text": "<|im_start|>user\\n...<|im_end|>\\n..."}` per line (chat template applied)
- `csv/<split>.csv`            example_id, split, source, quality_score, prompt, response, messages_json
- `parquet/<split>.parquet`    example_id, split, source, quality_score, content_hash, messages list<struct>
The two .json files are arrays with one compact record per line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ALL_FORMATS = ("openai_chat", "alpaca", "sharegpt", "qwen3_text", "csv", "parquet")
SUFFIX = {"openai_chat": "jsonl", "alpaca": "json", "sharegpt": "json", "qwen3_text": "jsonl", "csv": "csv",
          "parquet": "parquet"}

# --- OpenAI chat validation: the checks of OpenAI's cookbook "Data preparation and analysis for chat model
# fine-tuning" (format_errors), restricted to the roles this platform has, plus `weight` (0/1, assistant only).
OPENAI_ROLES = ("system", "user", "assistant")
OPENAI_MESSAGE_KEYS = ("role", "content", "name", "weight")
OPENAI_RECORD_KEYS = ("messages",)
TOKEN_LIMIT = 16385  # the cookbook's warning threshold: longer examples are truncated by fine-tuning
_PIECE = re.compile(r"\w+|[^\w\s]")
PROXY_COUNTER = r"regex proxy: one token per \w+ run or non-space symbol (no tokenizer download)"


def proxy_token_count(text: str) -> int:
    """Word runs + punctuation marks: close to BPE counts for English prose, lower for rare words and code."""
    return len(_PIECE.findall(text))


def openai_chat_tokens(messages: list[dict], count_tokens: Callable[[str], int] = proxy_token_count) -> int:
    """The cookbook's num_tokens_from_messages: 3 per message + every string value + 1 per name + 3 priming."""
    n = 3
    for m in messages:
        n += 3 + sum(count_tokens(v) for v in m.values() if isinstance(v, str)) + ("name" in m)
    return n


def proxy_chat_tokens(messages: pl.Series) -> list[int]:
    """openai_chat_tokens with the proxy for a whole column of conversations at once (Polars' regex)."""
    fields = {f.name for f in messages.dtype.inner.fields if f.dtype == pl.Utf8}  # type: ignore[union-attr]
    m = pl.element().struct
    per_message = pl.sum_horizontal(pl.lit(3), *[m.field(f).str.count_matches(_PIECE.pattern) for f in sorted(fields)],
                                     *([m.field("name").is_not_null().cast(pl.UInt32)] if "name" in fields else []))
    counts = messages.to_frame("m").select(pl.col("m").list.eval(per_message).list.sum() + 3)
    return counts.to_series().cast(pl.Int64).to_list()


def _message_issues(m) -> list[tuple[str, str]]:
    if not isinstance(m, dict):
        return [("message_data_type", f"a message is {type(m).__name__}, not an object")]
    out = []
    if "role" not in m or "content" not in m:
        out.append(("message_missing_key", f"keys {sorted(m)} lack role or content"))
    extra = sorted(k for k in m if k not in OPENAI_MESSAGE_KEYS)
    if extra:
        out.append(("message_unrecognized_key", f"keys {extra} (allowed: {', '.join(OPENAI_MESSAGE_KEYS)})"))
    if m.get("role") not in OPENAI_ROLES:
        out.append(("unrecognized_role", f"role {m.get('role')!r}"))
    content = m.get("content")
    if not isinstance(content, str) or not content:
        out.append(("missing_content", f"{m.get('role')} content is {content!r:.40}"))
    if "name" in m and (not isinstance(m["name"], str) or not m["name"]):
        out.append(("invalid_name", f"name {m['name']!r:.40}"))
    if "weight" in m and (m["weight"] not in (0, 1) or isinstance(m["weight"], bool) or m.get("role") != "assistant"):
        out.append(("invalid_weight", f"weight {m['weight']!r} on {m.get('role')} (0 or 1, assistant only)"))
    return out


def check_openai_chat(records: Sequence, count_tokens: Callable[[str], int] = proxy_token_count,
                      max_tokens: int = TOKEN_LIMIT, tokens_given: Sequence[int] | None = None
                      ) -> tuple[list[dict], list[int | None]]:
    """(issues, token count per record: None where the record is malformed). `tokens_given`: counts already
    computed (proxy_chat_tokens), used instead of `count_tokens`."""
    issues: list[dict] = []
    tokens: list[int | None] = []

    def issue(line: int, error: str, detail: str, severity: str = "error") -> None:
        issues.append({"line": line, "error": error, "detail": detail, "severity": severity})

    for line, rec in enumerate(records, 1):
        tokens.append(None)
        if not isinstance(rec, dict):
            issue(line, "data_type", f"a line is {type(rec).__name__}, not an object")
            continue
        extra = sorted(k for k in rec if k not in OPENAI_RECORD_KEYS)
        if extra:
            issue(line, "record_unrecognized_key", f"top-level keys {extra} (a line is {{\"messages\": [...]}})")
        messages = rec.get("messages")
        if not isinstance(messages, list) or not messages:
            issue(line, "missing_messages_list", f"messages is {messages!r:.40}")
            continue
        before = len(issues)
        for i, m in enumerate(messages):
            for error, detail in _message_issues(m):
                issue(line, error, f"message {i}: {detail}")
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            issue(line, "example_missing_assistant_message", "no assistant message")
        if len(issues) > before:
            continue
        tokens[-1] = n = tokens_given[line - 1] if tokens_given is not None else openai_chat_tokens(messages, count_tokens)
        if n > max_tokens:
            issue(line, "too_many_tokens", f"{n} tokens > {max_tokens}: truncated in fine-tuning", "warning")
    return issues, tokens


def validate_openai_chat(records: Sequence, *, count_tokens: Callable[[str], int] = proxy_token_count,
                         max_tokens: int = TOKEN_LIMIT) -> list[dict]:
    """Issues with OpenAI chat fine-tuning records, one dict per problem found:
    `{"line": 1-based, "error": rule, "detail": text, "severity": "error" | "warning"}`; [] when valid.

    Errors are the cookbook's rules (data_type, missing_messages_list, message_missing_key,
    message_unrecognized_key, unrecognized_role, missing_content, example_missing_assistant_message) plus
    record_unrecognized_key, message_data_type, invalid_name and invalid_weight. The one warning is
    too_many_tokens (over `max_tokens`, counted with `count_tokens`: the regex proxy unless a tokenizer's
    count is supplied, e.g. `lambda s: len(tok.encode(s, add_special_tokens=False))`).
    """
    return check_openai_chat(records, count_tokens, max_tokens)[0]


def token_stats(counts: list[int]) -> dict:
    """min/max/mean/p50/p95 (nearest rank)/total of per-example token counts."""
    s = sorted(counts)
    if not s:
        return {"min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0, "total": 0}
    rank = lambda q: s[max(0, math.ceil(q * len(s)) - 1)]  # noqa: E731
    return {"min": s[0], "max": s[-1], "mean": round(sum(s) / len(s), 2), "p50": rank(0.5), "p95": rank(0.95),
            "total": sum(s)}


# --- record builders (pure functions of one conversation)
THINK_BLOCK = "<think>\n\n</think>\n\n"
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def render_qwen3(messages: list[dict], think_block: bool = False) -> str:
    """ChatML as Qwen3's template renders it: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per turn, in order.

    With `think_block`, every assistant turn starts with the empty think block `<think>\\n\\n</think>\\n\\n`
    that Qwen3's template renders for a non-thinking answer (unless the turn already starts with `<think>`).
    Qwen3's own template puts it on the final answer only and drops it from assistant turns before the last
    user message; single-turn conversations render identically either way.
    """
    out = []
    for m in messages:
        content = m["content"]
        if think_block and m["role"] == "assistant" and not content.startswith("<think>"):
            content = THINK_BLOCK + content
        out.append(f"<|im_start|>{m['role']}\n{content}<|im_end|>\n")
    return "".join(out)


def alpaca_record(messages: list[dict]) -> dict:
    """Last user turn as instruction, last assistant reply as output, earlier pairs as `history`.

    Consecutive turns of one role are merged (nothing is dropped). Alpaca cannot hold an assistant turn
    before the first user turn (a greeting): it stays in the other formats only. The filter rule
    `ends_with_assistant_reply` guarantees at least one user -> assistant exchange.
    """
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    pairs: list[list[str]] = []
    pending, previous = None, None
    for m in messages:
        if m["role"] == "user":
            pending = m["content"] if pending is None else pending + "\n\n" + m["content"]
        elif m["role"] == "assistant":
            if pending is not None:
                pairs.append([pending, m["content"]])
                pending = None
            elif previous == "assistant" and pairs:
                pairs[-1][1] += "\n\n" + m["content"]
        previous = m["role"]
    if not pairs:
        raise ValueError("no user -> assistant exchange to export (the ends_with_assistant_reply filter rejects these)")
    *history, (instruction, output) = pairs
    record = {"instruction": instruction, "input": "", "output": output}
    if system:
        record["system"] = system
    if history:
        record["history"] = history
    return record


def sharegpt_record(example_id: str, messages: list[dict]) -> dict:
    return {"id": example_id,
            "conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in messages]}


# --- file writers: one split's rows (sorted), its conversations as Python lists, the target path
def _jsonl(path: Path, records: list) -> None:
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")


def _json(path: Path, records: list) -> None:
    """A JSON array with one compact record per line (the C encoder: indent= would use the slow Python one)."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records)
    path.write_text(f"[\n{body}\n]\n" if records else "[]\n", encoding="utf-8", newline="\n")


def _last_turn(role: str) -> pl.Expr:
    turn = pl.element()
    return (pl.col("messages").list.eval(turn.filter(turn.struct.field("role") == role).struct.field("content"))
            .list.last().alias("prompt" if role == "user" else "response"))


def _role_content() -> pl.Expr:
    """The messages column reduced to list<struct<role, content>> (the canonical MESSAGE struct)."""
    turn = pl.element().struct
    return (pl.col("messages").list.eval(pl.struct(turn.field("role"), turn.field("content")))
            .cast(pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))))


def _csv(path: Path, rows: pl.DataFrame) -> None:
    """Vectorized: Polars finds the last turns and JSON-encodes the conversation (same text as json.dumps)."""
    encoded = pl.lit("[") + _role_content().list.eval(pl.element().struct.json_encode()).list.join(",") + pl.lit("]")
    out = rows.select("example_id", "split", "source", pl.col("quality_score").cast(pl.Float64),
                      _last_turn("user"), _last_turn("assistant"), encoded.alias("messages_json"))
    out.write_csv(path, line_terminator="\n", quote_style="necessary")


PARQUET_SCHEMA = pa.schema([
    ("example_id", pa.string()), ("split", pa.string()), ("source", pa.string()), ("quality_score", pa.float64()),
    ("content_hash", pa.string()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
])


def _parquet(path: Path, rows: pl.DataFrame) -> None:
    """pyarrow with every option fixed: the same rows give the same bytes. Uncompressed, so the text is in
    the file as plain UTF-8 (what byte scans such as the erasure job's search for)."""
    frame = rows.select("example_id", "split", "source", pl.col("quality_score").cast(pl.Float64), "content_hash",
                        _role_content())
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(PARQUET_SCHEMA)
    pq.write_table(table, path, compression="NONE", use_dictionary=False, write_statistics=False,
                   version="2.6", data_page_version="1.0", row_group_size=65536, store_schema=True)


def write_format(fmt: str, path: Path, rows: pl.DataFrame, messages: list[list[dict]], think_block: bool) -> None:
    """Write one split in one format. `rows` are sorted; `messages[i]` is row i's conversation."""
    if fmt == "openai_chat":
        _jsonl(path, [{"messages": m} for m in messages])
    elif fmt == "alpaca":
        _json(path, [_alpaca_for(eid, m) for eid, m in zip(rows["example_id"].to_list(), messages)])
    elif fmt == "sharegpt":
        _json(path, [sharegpt_record(eid, m) for eid, m in zip(rows["example_id"].to_list(), messages)])
    elif fmt == "qwen3_text":
        _jsonl(path, [{"text": render_qwen3(m, think_block)} for m in messages])
    elif fmt == "csv":
        _csv(path, rows)
    elif fmt == "parquet":
        _parquet(path, rows)
    else:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(ALL_FORMATS)})")


def _alpaca_for(example_id: str, messages: list[dict]) -> dict:
    try:
        return alpaca_record(messages)
    except ValueError as e:
        raise ValueError(f"example {example_id}: alpaca: {e}") from None


def read_records(path: Path | str) -> list:
    """Any export file back as JSON-like records (a row dict per CSV/Parquet row): for scans and tests."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema=False).to_dicts() if path.stat().st_size else []
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)
