"""Public instruction/chat datasets dropped into the landing folder: Alpaca, Dolly, ShareGPT, OpenAI, HH.

The format is detected per record from its keys, not from the file name, because mirrors rename files
and mix formats. Only structurally impossible records are quarantined; quality is curation's job.
Turns that the canonical schema cannot express (ShareGPT `function_call`/`observation`/`tool`, OpenAI
`tool` messages and tool calls) quarantine the whole record naming the role: flattening them into user or
assistant text would teach the model to speak tool output it never saw a tool definition for.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Callable

from corpus_platform.sources.base import SourceBatch
from corpus_platform.sources.files import Reject, extras, json_type, read_landing, text_field

SOURCE = "public"
RESERVED = {"format", "file", "line", "template"}

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

# The Alpaca prompt template the Dolly mirror was rendered with; instruction and input are recovered from it.
ALPACA_TEMPLATE = re.compile(
    r"\s*Below is an instruction\b.*?\n\n### Instruction:\n(?P<instruction>.*?)"
    r"(?:\n\n### Input:\n(?P<input>.*?))?\n\n### Response:\s*\Z",
    re.S,
)
# What a format handler returns: messages, the record fields it consumed as content, extra metadata.
Parsed = tuple[list[dict[str, str]], set[str], dict[str, Any]]
# The Dolly mirror also appended this literal end-of-sequence placeholder to every answer.
EOS_PLACEHOLDER = "###eos_token###"
HH_TURN = re.compile(r"(?:\A|\n\n)(Human|Assistant):")


def read_public(folder: Path, day: date) -> SourceBatch:
    """Every public-dataset record of one `date` partition's landing folder, as canonical examples."""
    return read_landing(folder, day, SOURCE, _parse)


def _parse(record: dict, rel: str, n: int) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    fmt, handler = _detect(record)
    messages, consumed, meta = handler(record)
    return f"{rel}:{n}", messages, {**extras(record, consumed, RESERVED), **meta, "format": fmt}


def _detect(r: dict) -> tuple[str, Callable[[dict], Parsed]]:
    if "messages" in r:
        return "openai", _openai
    if "conversations" in r:
        return "sharegpt", _sharegpt
    if "chosen" in r:
        return "hh", _hh
    if "response" in r or "context" in r:
        return "dolly", lambda r: _instruction(r, "instruction", "context", "response")
    if "prompt" in r or "answer" in r:
        return "dolly", _templated
    if "instruction" in r or "output" in r:
        return "alpaca", lambda r: _instruction(r, "instruction", "input", "output")
    raise Reject(f"unknown format (keys: {', '.join(sorted(map(str, r))) or 'none'})")


def _system(r: dict) -> list[dict[str, str]]:
    _, system = text_field(r, "system", required=False)
    return [{"role": "system", "content": system}] if system and system.strip() else []


def _pair(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _join(instruction: str, extra: str | None) -> str:
    return instruction + ("\n\n" + extra if extra and extra.strip() else "")


def _instruction(r: dict, instr_key: str, input_key: str, output_key: str) -> Parsed:
    """Alpaca {instruction, input, output} and Dolly {instruction, context, response, category}."""
    _, instruction = text_field(r, instr_key)
    _, extra = text_field(r, input_key, required=False)
    _, output = text_field(r, output_key)
    return _system(r) + _pair(_join(instruction, extra), output), {instr_key, input_key, output_key, "system"}, {}


def _templated(r: dict) -> Parsed:
    """Dolly rendered through the Alpaca template as {prompt, answer}: the rendering is undone, so the turns
    hold what a person wrote; a prompt not in the template is kept whole."""
    _, prompt = text_field(r, "prompt")
    _, answer = text_field(r, "answer")
    answer = answer.removesuffix(EOS_PLACEHOLDER)
    m = ALPACA_TEMPLATE.match(prompt)
    if not m:
        return _pair(prompt, answer), {"prompt", "answer"}, {}
    return _pair(_join(m["instruction"], m["input"]), answer), {"prompt", "answer"}, {"template": "alpaca"}


def _sharegpt(r: dict) -> Parsed:
    turns = r["conversations"]
    if not isinstance(turns, list):
        raise Reject(f"wrong type: 'conversations' is {json_type(turns)}, expected array")
    messages = _system(r)
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise Reject(f"wrong type: turn {i} is {json_type(turn)}, expected object")
        speaker = turn.get("from", turn.get("role"))
        role = SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise Reject(f"unsupported role {speaker!r}" if speaker is not None else f"missing field 'from' in turn {i}")
        _, value = text_field(turn, "value", "content")
        messages.append({"role": role, "content": value})
    return messages, {"conversations", "system"}, {}


def _openai(r: dict) -> Parsed:
    turns = r["messages"]
    if not isinstance(turns, list):
        raise Reject(f"wrong type: 'messages' is {json_type(turns)}, expected array")
    messages = []
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise Reject(f"wrong type: turn {i} is {json_type(turn)}, expected object")
        if turn.get("tool_calls") or turn.get("function_call"):
            raise Reject("unsupported role 'tool_calls'")
        _, speaker = text_field(turn, "role")
        role = OPENAI_ROLES.get(speaker)
        if role is None:
            raise Reject(f"unsupported role {speaker!r}")
        messages.append({"role": role, "content": _openai_content(turn, i)})
    return messages, {"messages"}, {}


def _openai_content(turn: dict, i: int) -> str:
    content = turn.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Reject(f"wrong type: 'content' of turn {i} is {json_type(content)}, expected string or array")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else json_type(part)
        if kind != "text" or not isinstance(part.get("text"), str):
            raise Reject(f"non-text content part {kind!r}")
        texts.append(part["text"])
    return "\n".join(texts)


def _hh(r: dict) -> Parsed:
    """Anthropic HH: `chosen` is "\\n\\nHuman: ...\\n\\nAssistant: ..."; `rejected` stays in metadata."""
    _, chosen = text_field(r, "chosen")
    parts = HH_TURN.split(chosen)
    if parts[0].strip():
        raise Reject("text before the first Human:/Assistant: turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    messages = [{"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2])]
    return messages, {"chosen"}, {}
