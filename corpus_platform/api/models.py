"""Request and response bodies. Validation here is what keeps the landing files readable: a body the
conversations source would quarantine (lone surrogates, NaN, metadata shadowing a line field) is a 422."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from corpus_platform.capture.logger import FEEDBACK_KINDS, LINE_FIELDS

ID_PATTERN = r"^[A-Za-z0-9._:@+-]+$"
Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
FeedbackKind = Literal[FEEDBACK_KINDS]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _writable(self):
        try:
            json.dumps(self.model_dump(), ensure_ascii=False, allow_nan=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no lone surrogate escapes)") from None
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
        return self


class InteractionIn(_Body):
    user_message: str = Field(max_length=32_000)
    response: str = Field(max_length=32_000, description="the bot's answer (stored as bot_response)")
    user_id: Ident
    session_id: Ident | None = None
    model: str | None = Field(None, max_length=200, description="model version (stored as model_version)")
    system_prompt: str | None = Field(None, max_length=16_000)
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64,
                                     description="extra top-level fields of the line; may not shadow line fields")
    app_id: Ident | None = Field(None, description="app keys: omit or give their own app; admin keys: any app")

    @model_validator(mode="after")
    def _metadata_keys(self):
        bad = sorted(k for k in self.metadata if k in LINE_FIELDS or not 1 <= len(k) <= 64)
        if bad:
            raise ValueError(f"metadata keys {bad} shadow interaction fields or are not 1-64 characters")
        return self


class FeedbackIn(_Body):
    interaction_id: Ident
    kind: FeedbackKind
    text: str | None = Field(None, max_length=32_000, description="the corrected or edited answer")
    comment: str | None = Field(None, max_length=4_000)
    user_id: Ident | None = None


class InteractionOut(BaseModel):
    interaction_id: str
    day: str
    app_id: str | None


class FeedbackOut(BaseModel):
    feedback_id: str
    interaction_id: str
    day: str


class DeletionOut(BaseModel):
    request_id: str
    user_id: str
    app_id: str | None
    status: str
    requested_at: str
