"""Ask the judge for its verdict as a JSON schema (OpenAI structured outputs) instead of only in words.

The curation judge asks for `{"scores": {...}, "rationale": ...}` in its prompt and parses the reply.
Large models comply; a small local model (the embedded SmolLM2) does not ("The answer is 1."). Servers
that enforce `response_format: json_schema` (this platform's `serving`, vLLM, llama.cpp, OpenAI) can
make any model answer in that exact shape, so for them the distillation wraps the judge's client and
adds the schema to each judge request; the judge's prompt, parsing and cache are unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence


def judgment_schema(dimensions: Sequence[str], rationale_chars: int = 160) -> dict[str, Any]:
    """The judge's reply as a strict JSON schema: integer 1-10 per dimension, then a short rationale."""
    scores = {"type": "object", "additionalProperties": False, "required": list(dimensions),
              "properties": {d: {"type": "integer", "minimum": 1, "maximum": 10} for d in dimensions}}
    return {"type": "object", "additionalProperties": False, "required": ["scores", "rationale"],
            "properties": {"scores": scores, "rationale": {"type": "string", "maxLength": rationale_chars}}}


class SchemaJudgeClient:
    """Wraps an `openai.OpenAI` client: `chat.completions[.with_raw_response].create` gets the judgment's
    `response_format: json_schema`; everything else passes through."""

    def __init__(self, client: Any, dimensions: Sequence[str]):
        self._client = client
        self._format = {"type": "json_schema",
                        "json_schema": {"name": "judgment", "strict": True, "schema": judgment_schema(dimensions)}}

    @property
    def chat(self) -> "SchemaJudgeClient":
        return self

    @property
    def completions(self) -> "SchemaJudgeClient":
        return self

    @property
    def with_raw_response(self) -> "_Raw":
        return _Raw(self)

    def create(self, **kwargs: Any) -> Any:
        return self._client.chat.completions.create(**{**kwargs, "response_format": self._format})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _Raw:
    def __init__(self, outer: SchemaJudgeClient):
        self._outer = outer

    def create(self, **kwargs: Any) -> Any:
        return self._outer._client.chat.completions.with_raw_response.create(
            **{**kwargs, "response_format": self._outer._format})
