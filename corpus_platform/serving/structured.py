"""Structured outputs for the local server: `response_format: {"type": "json_schema", ...}` enforced by
constrained decoding, so even a 135M model answers in the exact JSON shape a caller parses (the judge).

Why not a general JSON grammar: masking a 49k-token vocabulary against a grammar at every step is slow
in Python. The schemas callers send here are small records, so the output is built field by field
instead: the server writes the structure (braces, keys, commas) itself and lets the model choose only
the values, each under its own constraint (the prompt is prefilled once; every piece extends the
same KV cache):

- integer / number: digit by digit, only digits that can still complete a value in [minimum, maximum],
  stopping where the model prefers to close the value (its logits for ',' or '}' tokens);
- boolean, enum, const: the option whose tokens the model finds most likely;
- string: free generation up to `maxLength` characters (and the token budget), cut at the first quote
  or newline, then JSON-escaped.

Supported: objects with `properties` (every property is written, in order), the scalar types above,
`enum`, `const`, and `["type", "null"]` unions (the non-null type is used). Anything else (arrays,
anyOf, $ref, patterns) is refused with a 400 naming the part, never silently ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch

MAX_INT_DIGITS = 12


class UnsupportedSchema(ValueError):
    pass


def check_schema(schema: Any, path: str = "$") -> None:
    """Raise UnsupportedSchema for anything the decoder below cannot enforce."""
    if not isinstance(schema, dict):
        raise UnsupportedSchema(f"{path}: a schema must be an object")
    for key in ("anyOf", "oneOf", "allOf", "$ref", "pattern", "items", "prefixItems", "not", "if"):
        if key in schema:
            raise UnsupportedSchema(f"{path}: '{key}' is not supported by this server")
    if "enum" in schema or "const" in schema:
        options = schema.get("enum", [schema.get("const")])
        if not isinstance(options, list) or not options:
            raise UnsupportedSchema(f"{path}: enum must be a non-empty list")
        return
    kind = _type(schema, path)
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            raise UnsupportedSchema(f"{path}: objects need 'properties'")
        for name, sub in props.items():
            check_schema(sub, f"{path}.{name}")
    elif kind not in ("integer", "number", "string", "boolean", "null"):
        raise UnsupportedSchema(f"{path}: type '{kind}' is not supported by this server")


def _type(schema: dict, path: str) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise UnsupportedSchema(f"{path}: type unions other than [T, 'null'] are not supported")
        kind = rest[0]
    if not isinstance(kind, str):
        raise UnsupportedSchema(f"{path}: every value needs a 'type' (or enum/const)")
    return kind


@dataclass
class _Vocab:
    digits: dict[str, int]
    closers: list[int]  # tokens that start with ',' or '}' (the value is complete)


_VOCAB_CACHE: dict[int, _Vocab] = {}


def _vocab(tokenizer: Any) -> _Vocab:
    key = id(tokenizer)
    if key not in _VOCAB_CACHE:
        digits = {}
        for d in "0123456789":
            tid = tokenizer.convert_tokens_to_ids(d)
            if tid is None or tid == tokenizer.unk_token_id or tokenizer.decode([tid]) != d:
                ids = tokenizer(d, add_special_tokens=False)["input_ids"]
                tid = ids[0] if len(ids) == 1 else None
            if tid is None:
                raise UnsupportedSchema(f"this model's tokenizer has no token for the digit {d}")
            digits[d] = tid
        closers = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).lstrip(" ").startswith((",", "}"))]
        _VOCAB_CACHE[key] = _Vocab(digits, closers)
    return _VOCAB_CACHE[key]


def _can_complete(prefix: str, lo: int, hi: int) -> bool:
    """Whether some integer in [lo, hi] (lo >= 0) is written with `prefix` as its leading digits."""
    if not prefix or (len(prefix) > 1 and prefix[0] == "0"):
        return False
    base = int(prefix)
    for extra in range(0, len(str(hi)) - len(prefix) + 1):
        first, last = base * 10**extra, base * 10**extra + 10**extra - 1
        if extra and prefix == "0":
            break
        if first <= hi and last >= lo:
            return True
    return False


class SchemaDecoder:
    """Builds one JSON document for `schema`, asking the model only for the values.

    The prompt is run through the model once; every piece after it (forced structure, chosen digits,
    generated string tokens) extends the same KV cache, so a document costs one prefill plus a few
    tokens, not a prefill per value."""

    def __init__(self, model: Any, tokenizer: Any, prompt: str, *, max_tokens: int, temperature: float,
                 top_p: float = 1.0):
        from transformers import DynamicCache

        self.model, self.tokenizer = model, tokenizer
        self.max_tokens, self.temperature, self.top_p = max_tokens, temperature, top_p
        self.prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        self.ids: list[int] = list(self.prompt_ids)
        self.cache = DynamicCache()
        self.cached = 0  # tokens of self.ids already in the cache
        self.logits: torch.Tensor | None = None  # next-token logits after self.ids[:self.cached]
        self.text = ""
        self.vocab = _vocab(tokenizer)
        self.truncated = False

    # -- model access ----------------------------------------------------------------------------
    def _forward(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids]), past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[0].float()

    def _next_logits(self) -> torch.Tensor:
        if self.logits is None or self.cached < len(self.ids):
            self.logits = self._forward(self.ids[self.cached:])[-1]
            self.cached = len(self.ids)
        return self.logits

    def _pick(self, scores: list[float]) -> int:
        if self.temperature <= 0 or len(scores) == 1:
            return max(range(len(scores)), key=scores.__getitem__)
        t = torch.tensor(scores) / self.temperature
        return int(torch.multinomial(torch.softmax(t, dim=0), 1))

    def used_tokens(self) -> int:
        return len(self.ids) - len(self.prompt_ids)

    def _append(self, ids: list[int], text: str) -> None:
        self.ids += ids
        self.text += text
        if self.used_tokens() > self.max_tokens:
            self.truncated = True
            raise _Budget

    def _write(self, s: str) -> None:
        self._append(self.tokenizer(s, add_special_tokens=False)["input_ids"], s)

    # -- values ----------------------------------------------------------------------------------
    def run(self, schema: dict) -> str:
        try:
            self._value(schema)
        except _Budget:
            pass
        return self.text

    def _value(self, schema: dict) -> None:
        if "enum" in schema or "const" in schema:
            self._choose([json.dumps(v) for v in schema.get("enum", [schema.get("const")])])
            return
        kind = _type(schema, "$")
        if kind == "object":
            self._write("{")
            for i, (name, sub) in enumerate(schema["properties"].items()):
                self._write((", " if i else "") + json.dumps(name) + ": ")
                self._value(sub)
            self._write("}")
        elif kind in ("integer", "number"):
            self._integer(schema)
        elif kind == "boolean":
            self._choose(["true", "false"])
        elif kind == "null":
            self._write("null")
        else:
            self._string(schema)

    def _choose(self, options: list[str]) -> None:
        """The option whose tokens the model finds most likely (each scored on the shared cache, then cropped)."""
        first = torch.log_softmax(self._next_logits(), dim=-1)
        encoded = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        scores = []
        for ids in encoded:
            score = float(first[ids[0]])
            if len(ids) > 1:
                rest = torch.log_softmax(self._forward(ids[:-1]), dim=-1)
                score += sum(float(rest[i, ids[i + 1]]) for i in range(len(ids) - 1))
                self.cache.crop(-(len(ids) - 1))  # back to `base` tokens (a negative count removes)
            scores.append(score)
        k = self._pick(scores)
        self._append(encoded[k], options[k])

    def _integer(self, schema: dict) -> None:
        lo = schema.get("minimum", 0)
        hi = schema.get("maximum", 10**MAX_INT_DIGITS - 1)
        lo, hi = max(0, math.ceil(lo)), math.floor(hi)
        if lo > hi:
            raise UnsupportedSchema("minimum > maximum (or a negative range): not supported")
        digits = ""
        while len(digits) <= MAX_INT_DIGITS:
            allowed = [d for d in "0123456789" if _can_complete(digits + d, lo, hi)]
            done = bool(digits) and lo <= int(digits) <= hi
            if not allowed:
                break
            logits = self._next_logits()
            scores = [float(logits[self.vocab.digits[d]]) for d in allowed]
            labels: list[str | None] = list(allowed)
            if done and self.vocab.closers:
                scores.append(float(logits[self.vocab.closers].max()))
                labels.append(None)
            choice = labels[self._pick(scores)]
            if choice is None:
                break
            digits += choice
            self._append([self.vocab.digits[choice]], choice)

    def _string(self, schema: dict) -> None:
        limit = int(schema.get("maxLength", 10_000))
        self._write('"')
        budget = max(0, self.max_tokens - self.used_tokens() - 1)
        generated: list[int] = []
        eos = self.tokenizer.eos_token_id
        for _ in range(budget):
            logits = self._next_logits()
            if self.temperature > 0:
                probs = torch.softmax(logits / self.temperature, dim=-1)
                if self.top_p < 1.0:
                    sorted_p, order = torch.sort(probs, descending=True)
                    keep = torch.cumsum(sorted_p, 0) - sorted_p < self.top_p
                    probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
                tid = int(torch.multinomial(probs / probs.sum(), 1))
            else:
                tid = int(torch.argmax(logits))
            piece = self.tokenizer.decode([tid])
            if tid == eos or tid in self.tokenizer.all_special_ids or any(c in piece for c in '"\\\n'):
                break
            generated.append(tid)
            self.ids.append(tid)
            if len(self.tokenizer.decode(generated)) >= limit:
                break
        value = self.tokenizer.decode(generated).strip()[:limit]
        self.text += json.dumps(value, ensure_ascii=False)[1:-1]
        self._write('"')


class _Budget(Exception):
    """max_tokens reached: the document stops where it is (finish_reason=length)."""
