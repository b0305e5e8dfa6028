"""Distillation settings as a resource: the sources, the teachers and their routing, the judge, the mode.

Teachers and routing are JSON (editable in the launchpad); keys are never configured, only the names
of the environment variables that hold them. In the code location they come from the environment:

    CORPUS_DISTILL_TEACHERS   JSON list of teachers, or @/path/to/teachers.json
    CORPUS_DISTILL_ROUTING    JSON {category: [teacher names]}, "*" for the rest (default: all teachers)
    CORPUS_DISTILL_SOURCES    comma-separated sources to distill (default: public)
    CORPUS_DISTILL_MODE       online | batch (default: online)
    CORPUS_DISTILL_JUDGE_BASE_URL, CORPUS_DISTILL_JUDGE_MODEL, CORPUS_DISTILL_JUDGE_API_KEY_ENV
                              (default: the curation judge's CORPUS_JUDGE_BASE_URL, _MODEL, _API_KEY)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import dagster as dg

from corpus_platform.curation.judge import DEFAULT_DIMENSIONS, JudgeSettings
from corpus_platform.distillation.distill import DistillSettings
from corpus_platform.distillation.teachers import TeacherNotConfigured, parse_routing, parse_teachers
from corpus_platform.sources.policy import BackoffPolicy

DISTILLATION_ENV = ["CORPUS_DISTILL_TEACHERS", "CORPUS_DISTILL_JUDGE_BASE_URL"]


class DistillationSettings(dg.ConfigurableResource):
    sources: list[str] = ["public"]  # partitions of other sources materialize with 0 rows, saying so
    teachers_json: str = ""  # [{name, base_url, model, api_key_env, price_input_per_mtok, price_output_per_mtok, ...}]
    routing_json: str = ""  # {"code": ["a"], "*": ["b"]}; empty: every teacher for every category
    mode: str = "online"  # online: call the teachers | batch: write/read OpenAI Batch API files
    max_instructions: int = 0  # per partition (the first N by example_id); 0 = all
    concurrency: int = 4
    max_retries: int = 5  # per request, on 429/5xx/timeouts (Retry-After honoured)
    retry_base_delay_s: float = 0.5
    retry_errors: bool = True  # ask again, on the next run, for pairs whose last attempt failed
    keep_truncated: bool = False  # may an answer cut at max_tokens win?
    judge_base_url: str = ""  # an OpenAI-compatible endpoint (…/v1)
    judge_model: str = "gpt-4o-mini"
    judge_api_key_env: str = ""  # the variable holding the judge's key ("" = a local server without one)
    judge_price_input_per_mtok: float = 0.0
    judge_price_output_per_mtok: float = 0.0
    judge_threshold: float = 7.0  # the winner's judged score (1-10) must be at least this to be kept
    judge_dimensions: list[str] = list(DEFAULT_DIMENSIONS)
    judge_max_tokens: int = 512
    judge_response_format: str = "json_object"  # "" for servers without JSON mode
    judge_prompt_version: str = "v1"
    judge_concurrency: int = 4
    judge_timeout_s: float = 60.0  # per judge request
    judge_json_schema: bool = False  # ask with response_format json_schema (for small local judges; the server enforces it)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "DistillationSettings":
        env = os.environ if env is None else env
        values: dict = {}
        for field, var in [("teachers_json", "CORPUS_DISTILL_TEACHERS"), ("routing_json", "CORPUS_DISTILL_ROUTING"),
                           ("mode", "CORPUS_DISTILL_MODE"), ("judge_base_url", "CORPUS_DISTILL_JUDGE_BASE_URL"),
                           ("judge_model", "CORPUS_DISTILL_JUDGE_MODEL"),
                           ("judge_api_key_env", "CORPUS_DISTILL_JUDGE_API_KEY_ENV")]:
            if env.get(var):
                values[field] = env[var]
        # The curation judge's endpoint (CORPUS_JUDGE_*) unless the distillation names its own.
        if "judge_base_url" not in values and env.get("CORPUS_JUDGE_BASE_URL"):
            values["judge_base_url"] = env["CORPUS_JUDGE_BASE_URL"]
            if env.get("CORPUS_JUDGE_MODEL") and "judge_model" not in values:
                values["judge_model"] = env["CORPUS_JUDGE_MODEL"]
            if env.get("CORPUS_JUDGE_API_KEY") and "judge_api_key_env" not in values:
                values["judge_api_key_env"] = "CORPUS_JUDGE_API_KEY"
        if env.get("CORPUS_DISTILL_SOURCES"):
            values["sources"] = [s.strip() for s in env["CORPUS_DISTILL_SOURCES"].split(",") if s.strip()]
        return cls(**{**values, **overrides})

    def judge(self, env: Mapping[str, str] | None = None, *, need_key: bool = True) -> JudgeSettings:
        env = os.environ if env is None else env
        key = ""
        if self.judge_api_key_env:
            key = env.get(self.judge_api_key_env, "")
            if not key and need_key:
                raise TeacherNotConfigured(f"the distillation judge needs its API key in ${self.judge_api_key_env}, "
                                           "which is not set")
        return JudgeSettings(base_url=self.judge_base_url or None, model=self.judge_model, api_key=key,
                             dimensions=tuple(self.judge_dimensions), threshold=self.judge_threshold,
                             price_input_per_mtok=self.judge_price_input_per_mtok,
                             price_output_per_mtok=self.judge_price_output_per_mtok,
                             prompt_version=self.judge_prompt_version, max_concurrency=self.judge_concurrency,
                             timeout=self.judge_timeout_s,
                             max_tokens=self.judge_max_tokens, max_retries=self.max_retries,
                             response_format=self.judge_response_format or None)

    def settings(self, *, batch_dir: Path, ledger: Path, env: Mapping[str, str] | None = None) -> DistillSettings:
        teachers = parse_teachers(self.teachers_json)
        if not teachers:
            raise TeacherNotConfigured("no distillation teachers configured: set CORPUS_DISTILL_TEACHERS (a JSON list "
                                       "of {name, base_url, model, api_key_env, price_input_per_mtok, "
                                       "price_output_per_mtok}) or the resource's teachers_json")
        return DistillSettings(
            teachers=tuple(teachers), routing=parse_routing(self.routing_json, teachers), judge=self.judge(env),
            mode=self.mode, max_instructions=self.max_instructions, concurrency=self.concurrency,
            backoff=BackoffPolicy(max_retries=self.max_retries, base_delay=self.retry_base_delay_s),
            retry_errors=self.retry_errors, keep_truncated=self.keep_truncated, judge_json_schema=self.judge_json_schema,
            batch_dir=batch_dir, ledger=ledger)
