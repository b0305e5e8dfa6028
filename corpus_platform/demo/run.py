"""The embedded default, end to end: demo files land, every partition is curated through the real
jobs on the Dagster instance (so the UI shows the runs), then splits, exports, a LoRA adapter on
SmolLM2-135M and its evaluation. `make demo` calls `main()`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg

from corpus_platform.curation.exports import latest_export
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.training.assets import latest_adapter
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.distillation.demo import DEMO_INSTRUCTIONS, DEMO_SOURCE, run_demo_distillation
from corpus_platform.settings import FILE_SOURCES, REPO_ROOT, Layout
from corpus_platform.warehouse import connect

DEMO_DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]

# Fits a few minutes on 2 CPU cores: 24 optimizer steps of 4 x 2 conversations.
DEMO_TRAINING = dict(max_steps=24, per_device_batch_size=4, gradient_accumulation_steps=2, eval_steps=12,
                     max_seq_len=384, learning_rate=5e-4)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoResult:
    runs: list[dict] = field(default_factory=list)  # job, partition, success, checks
    planted: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(r["success"] for r in self.runs)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}.{e.asset_check_evaluation_data.check_name}":
            e.asset_check_evaluation_data.passed
        for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def run_pipeline(defs: dg.Definitions, instance: dg.DagsterInstance, days: list[date],
                 sources: tuple[str, ...] = FILE_SOURCES, quiet: bool = True) -> DemoResult:
    """Curate every (day, source) partition, then train and evaluate, as the jobs a user would launch."""
    result = DemoResult()
    curate = defs.resolve_job_def("curate_partition")
    for day in days:
        for source in sources:
            r = curate.execute_in_process(partition_key=partition_key(day, source), instance=instance,
                                          run_config=QUIET if quiet else None, raise_on_error=False)
            result.runs.append({"job": "curate_partition", "partition": f"{day}|{source}", "success": r.success,
                                "checks": _checks(r)})
    train = defs.resolve_job_def("train_and_evaluate")
    r = train.execute_in_process(instance=instance, run_config=QUIET if quiet else None, raise_on_error=False)
    result.runs.append({"job": "train_and_evaluate", "partition": None, "success": r.success, "checks": _checks(r)})
    return result


def summarize(home: Path, result: DemoResult, extra: list[str] | None = None) -> str:
    layout = Layout(home)
    out = []
    with connect(layout.warehouse) as con:
        out.append("Rows per stage")
        for _, stage, n in con.execute("""SELECT array_position(['raw_examples','filtered_examples','deduplicated_examples',
            'scored_examples','duplicate_clusters (removed)','dataset_splits'], stage) AS o, stage, sum(examples)
            FROM corpus.stage_counts GROUP BY 1, 2 ORDER BY 1""").fetchall():
            out.append(f"  {stage:<30}{n:>7}")
        q, = con.execute("SELECT count(*) FROM corpus.quarantine").fetchone()
        out.append(f"  {'quarantined records':<30}{q:>7}")
        out.append("\nDecisions by stage and rule")
        for _, stage, decision, rule, n in con.execute("""SELECT array_position(['filter','dedup','score','cluster','judge','review','decontaminate','cap','split'], stage) AS o,
            stage, decision, coalesce(rule, '-') AS r, count(*) FROM corpus.decisions GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4""").fetchall():
            out.append(f"  {stage:<8}{decision:<11}{rule:<22}{n:>6}")
        missing, = con.execute("SELECT count(*) FROM corpus.example_outcomes WHERE final_stage IS NULL").fetchone()
        out.append(f"  raw examples without a decision: {missing}")
    failed = [(r["partition"] or r["job"], c) for r in result.runs for c, ok in r["checks"].items() if not ok]
    total = sum(len(r["checks"]) for r in result.runs)
    out.append(f"\nAsset checks: {total - len(failed)} passed, {len(failed)} failed")
    out += [f"  FAILED {c} ({p})" for p, c in failed]
    out.append(f"Runs: {sum(r['success'] for r in result.runs)} of {len(result.runs)} succeeded")
    try:
        out.append(f"\nExport:  {latest_export(layout.exports)}")
        adapter = latest_adapter(layout.adapters)
        metrics = json.loads((adapter / "metrics.json").read_text())
        evaluation = json.loads((adapter / "evaluation.json").read_text())
        out.append(f"Adapter: {adapter}")
        out.append(f"  steps {metrics.get('steps')}, train loss {metrics.get('train_loss'):.4f}, "
                   f"eval loss {metrics.get('eval_loss'):.4f}")
        out.append(f"Evaluation on {evaluation['examples']} test examples (assistant tokens):")
        out.append(f"  perplexity base {evaluation['base']['perplexity']:.3f} -> adapter {evaluation['adapter']['perplexity']:.3f}")
        gen = evaluation.get("generations")
        if gen and gen["examples"]:
            out.append(f"  token F1 vs reference base {gen['base']['token_f1']:.3f} -> adapter {gen['adapter']['token_f1']:.3f}, "
                       f"ROUGE-L {gen['base']['rouge_l']:.3f} -> {gen['adapter']['rouge_l']:.3f} ({gen['examples']} greedy generations)")
        out.append(f"  judge: {evaluation.get('judge', {}).get('status', 'skipped')}")
        stats = evaluation.get("statistics")
        if stats:
            lo, hi = stats["win_rate_ci"]
            out.append(f"  {stats['source']}: p = {stats['p_value']:.3g}, Cohen's d = {stats['cohens_d']:.3f}, "
                       f"win rate {stats['win_rate']:.3f} (95% CI {lo:.3f} to {hi:.3f})")
        promotion = evaluation.get("promotion")
        if promotion:
            verdict = "PASSED, adapter promoted to adapters/current" if promotion["passed"] else "FAILED, not promoted"
            out.append(f"  promotion gate: {verdict} ({promotion['reason']})")
        else:
            out.append("  promotion gate: not evaluated")
    except (FileNotFoundError, KeyError, TypeError) as e:
        out.append(f"\nNo adapter/evaluation: {e}")
    out += extra or []
    out.append("\nOpen the UI:  make ui   (http://127.0.0.1:3000)")
    return "\n".join(out)


def ui_instance(layout: Layout) -> dg.DagsterInstance:
    """The instance `make ui` shows: DAGSTER_HOME under CORPUS_HOME, configured by the top-level dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    return dg.DagsterInstance.get()


def main() -> int:
    from corpus_platform.definitions import make_definitions

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    layout = Layout.from_env()
    planted = write_demo_corpus(layout.landing, DEMO_DAYS)
    print(f"Demo corpus written under {layout.landing} for {', '.join(d.isoformat() for d in DEMO_DAYS)}")
    defs = make_definitions(layout.home, curation=CurationSettings(),
                            training=TrainingSettings(base_model=os.environ.get("CORPUS_BASE_MODEL", "embedded:smollm2"), **DEMO_TRAINING))
    print("Curating 6 partitions, then training and evaluating (a few minutes on 2 cores)...", flush=True)
    with ui_instance(layout) as instance:
        result = run_pipeline(defs, instance, DEMO_DAYS)
    result.planted = planted
    print(f"Distilling {DEMO_INSTRUCTIONS} instructions of {DEMO_DAYS[0]}|{DEMO_SOURCE} with two teachers and a judge...", flush=True)
    distillation = run_demo_distillation(layout, defs.resources, DEMO_DAYS[0])
    print(summarize(layout.home, result, extra=distillation.summary_lines()))
    return 0 if result.success and distillation.success else 1


if __name__ == "__main__":
    sys.exit(main())
