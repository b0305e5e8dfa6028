"""The demo's distillation pass: a few instructions of one demo partition, two teachers and a judge.

With no teacher endpoint configured (CORPUS_DISTILL_TEACHERS unset) the demo serves its local model
(the embedded SmolLM2, or CORPUS_DISTILL_SERVE_MODEL / CORPUS_BASE_MODEL when set) behind the
platform's OpenAI-compatible server on 127.0.0.1, and both teachers (two system prompts and
temperatures) and the judge (its verdict's JSON schema enforced by the server) talk to it through the
real `openai` client. With endpoints configured, the resource comes from the environment instead.

The pass is the distilled_examples asset materialized through Dagster (`dg.materialize`) on an
ephemeral instance, so the demo's instance keeps exactly the curation and training runs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from corpus_platform.defs.distillation.assets import distilled_examples
from corpus_platform.defs.distillation.resources import DistillationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.settings import Layout
from corpus_platform.training.models import EMBEDDED_SMOLLM2
from corpus_platform.warehouse import connect

DEMO_SOURCE = "public"
DEMO_INSTRUCTIONS = 4
SERVE_MODEL_ENV = "CORPUS_DISTILL_SERVE_MODEL"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROUTING = {"code": ["smollm2-precise"], "math": ["smollm2-precise"], "*": ["smollm2-precise", "smollm2-friendly"]}


def local_resource(base_url: str, model: str, *, instructions: int = DEMO_INSTRUCTIONS) -> DistillationSettings:
    """Two teachers and the judge on one local endpoint; small max_tokens so the pass fits ~a minute on 2 cores."""
    teachers = [
        {"name": "smollm2-precise", "base_url": base_url, "model": model, "temperature": 0.0, "max_tokens": 48,
         "timeout_s": 600, "system_prompt": "You are a precise assistant. Answer correctly and briefly, in at most two sentences."},
        {"name": "smollm2-friendly", "base_url": base_url, "model": model, "temperature": 0.7, "seed": 0,
         "max_tokens": 48, "timeout_s": 600, "system_prompt": "You are a friendly teacher. Explain simply, in two short sentences."},
    ]
    return DistillationSettings(
        sources=[DEMO_SOURCE], teachers_json=json.dumps(teachers), routing_json=json.dumps(ROUTING),
        max_instructions=instructions, concurrency=1, keep_truncated=True, judge_base_url=base_url, judge_model=model,
        judge_dimensions=["helpfulness", "correctness"], judge_max_tokens=48, judge_concurrency=1,
        judge_timeout_s=600, judge_json_schema=True)


@dataclass
class DemoDistillation:
    partition: str
    served_at: str | None = None  # "127.0.0.1:<port>" when the local model was served
    served_model: str | None = None
    success: bool = False
    error: str | None = None
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    teachers: list[dict[str, Any]] = field(default_factory=list)
    best_scores: list[float] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        out = [f"\nDistillation ({self.partition}, the first {DEMO_INSTRUCTIONS} instructions"
               + ("; code and math -> smollm2-precise, the rest -> both teachers)" if self.served_at else ")")]
        if self.served_at:
            out.append(f"  no teacher endpoint configured (CORPUS_DISTILL_TEACHERS unset): served {self.served_model} "
                       f"on {self.served_at} as a local OpenAI-compatible endpoint for both teachers and the judge")
        else:
            out.append("  teachers and judge from CORPUS_DISTILL_* (configured endpoints)")
        if not self.success:
            out.append(f"  FAILED: {self.error}")
            return out
        m = self.metadata
        for t in self.teachers:
            out.append(f"  {t['teacher']:<18} {t['answers']} answers, {t['errors']} errors, {t['prompt_tokens']} prompt + "
                       f"{t['completion_tokens']} completion tokens, ${t['cost_usd']:.6f}")
        scores = ", ".join(f"{s:.1f}" for s in self.best_scores) or "none"
        out.append(f"  judge: {m.get('judged', 0)} answers scored, {m.get('judge_errors', 0)} errors; best per instruction: "
                   f"{scores}; kept {m.get('kept', 0)} of {m.get('instructions', 0)} at threshold {m.get('threshold', 0):.1f} "
                   f"(corpus.distilled_examples)")
        if self.served_at:
            out.append("  a model this small is a weak teacher and a weaker judge (its scores carry little signal); set "
                       "CORPUS_DISTILL_TEACHERS and CORPUS_DISTILL_JUDGE_* for real ones (README, Distillation)")
        out.append(f"  cost per teacher: SELECT * FROM corpus.distillation_cost_per_teacher   ({self.seconds:.0f} s)")
        return out


def _serve_model(layout: Layout, env: Mapping[str, str]) -> tuple[Path, str]:
    from corpus_platform.training.models import resolve_base_model

    spec = env.get(SERVE_MODEL_ENV) or env.get("CORPUS_BASE_MODEL") or EMBEDDED_SMOLLM2
    path = resolve_base_model(spec, layout.models)
    label = "the embedded SmolLM2-135M-Instruct" if spec == EMBEDDED_SMOLLM2 else f"the local model {path.name}"
    return path, label


def run_demo_distillation(layout: Layout, resources: Mapping[str, Any], day: date,
                          env: Mapping[str, str] | None = None) -> DemoDistillation:
    """Materialize distilled_examples for (day, public): local endpoints unless CORPUS_DISTILL_TEACHERS is set."""
    env = os.environ if env is None else env
    started = time.monotonic()
    out = DemoDistillation(partition=f"{day.isoformat()}|{DEMO_SOURCE}")
    handle = None
    try:
        if env.get("CORPUS_DISTILL_TEACHERS"):
            resource = DistillationSettings.from_env(env, sources=[DEMO_SOURCE], max_instructions=DEMO_INSTRUCTIONS)
        else:
            from corpus_platform.serving import serve_in_thread

            path, out.served_model = _serve_model(layout, env)
            handle = serve_in_thread(path)
            out.served_at = f"{handle.host}:{handle.port}"
            resource = local_resource(handle.base_url, handle.model.name)
        result = dg.materialize([distilled_examples], partition_key=partition_key(day, DEMO_SOURCE),
                                resources={**resources, "distillation": resource}, run_config=QUIET,
                                raise_on_error=False)
        out.success = result.success
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            out.error = failure.step_failure_data.error.message.strip() if failure else "the run failed"
        else:
            mat = result.asset_materializations_for_node("distilled_examples")[0]
            out.metadata = {k: v.value for k, v in mat.metadata.items()}
            _read_outcome(layout, day, out)
    except Exception as exc:  # noqa: BLE001 - the demo reports it and exits non-zero
        out.success, out.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        if handle is not None:
            handle.close()
    out.seconds = time.monotonic() - started
    return out


def _read_outcome(layout: Layout, day: date, out: DemoDistillation) -> None:
    with connect(layout.warehouse) as con:
        out.teachers = con.execute("""
            SELECT teacher, count(*) FILTER (WHERE status = 'ok') AS answers, count(*) FILTER (WHERE status = 'error') AS errors,
                   sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens, sum(cost_usd) AS cost_usd
            FROM corpus.teacher_answers WHERE date = ? AND source = ? GROUP BY teacher ORDER BY teacher""",
                                   [day, DEMO_SOURCE]).pl().to_dicts()
        out.best_scores = [r[0] for r in con.execute("""
            SELECT max(judged_score) FROM corpus.teacher_answers WHERE date = ? AND source = ? AND status = 'ok'
            GROUP BY instruction_hash HAVING max(judged_score) IS NOT NULL ORDER BY 1 DESC""", [day, DEMO_SOURCE]).fetchall()]
