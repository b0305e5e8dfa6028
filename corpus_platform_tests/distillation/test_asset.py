"""The distilled_examples asset through Dagster (dg.materialize, a real instance, the code location's
resources from make_definitions) on a temp CORPUS_HOME: online and batch mode, a source that is not
selected, keys read from the environment and never written anywhere, and the demo corpus curated by
the real job and then distilled."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.distillation.assets import batch_dir, distilled_examples
from corpus_platform.defs.distillation.resources import DistillationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.distillation.conftest import DAY, ROUTING, SOURCE, seed_scored, teachers_config

SECRET = "SENTINEL-TEACHER-KEY-42"


def resource(servers, **kw) -> DistillationSettings:
    base = dict(teachers_json=json.dumps(teachers_config(servers, key_env="DISTILL_TEST_KEY")),
                routing_json=json.dumps(ROUTING), judge_base_url=f"{servers['judge'].base_url}/v1",
                judge_model="judge-model", judge_api_key_env="DISTILL_TEST_KEY", max_retries=1, retry_base_delay_s=0.0)
    base.update(kw)
    return DistillationSettings(**base)


def materialize(home, instance, distillation, day=DAY, source=SOURCE):
    defs = make_definitions(home, distillation=distillation)
    result = dg.materialize([distilled_examples], partition_key=partition_key(day, source), instance=instance,
                            resources=defs.resources, raise_on_error=False, run_config=QUIET)
    mat = instance.fetch_materializations(dg.AssetKey("distilled_examples"), limit=1).records
    meta = {k: v.value for k, v in mat[0].asset_materialization.metadata.items()} if mat else {}
    events = [str(e) for e in instance.all_logs(result.run_id)]
    return result, meta, events


def test_online_then_unselected_source_then_batch_through_dagster(tmp_path, servers, monkeypatch, capsys):
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    home = Layout(tmp_path)
    seed_scored(home.warehouse)
    with dg.instance_for_test() as instance:
        result, meta, events = materialize(tmp_path, instance, resource(servers))
        assert result.success, events[-5:]
        assert meta["dagster/row_count"] == 4 and meta["kept"] == 4 and meta["asked_this_run"] == 8
        assert meta["selected"] is True and meta["teacher_cost_usd_this_run"] > 0
        assert "| coder |" in meta["teachers"] and "| generalist |" in meta["teachers"]
        assert all(s.auth_seen == {f"Bearer {SECRET}"} for s in servers.values())  # the key came from the env

        again, meta2, _ = materialize(tmp_path, instance, resource(servers))  # never asks twice
        assert again.success and meta2["asked_this_run"] == 0 and meta2["reused_answers"] == 8
        assert servers["coder"].count == 5 and servers["generalist"].count == 3

        seed_scored(home.warehouse, source="conversations")
        other, meta3, _ = materialize(tmp_path, instance, resource(servers), source="conversations")
        assert other.success and meta3["dagster/row_count"] == 0 and meta3["selected"] is False
        assert "'conversations' is not selected" in meta3["note"]

        day2 = DAY.replace(day=3)
        seed_scored(home.warehouse, day=day2)
        batch, meta4, _ = materialize(tmp_path, instance, resource(servers, mode="batch"), day=day2)
        assert batch.success and meta4["mode"] == "batch"
        # Same instructions as DAY: every pair is already answered, so nothing is written or asked...
        assert meta4["batch_requests_written"] == 0 and meta4["reused_answers"] == 8
        # ...and the winners belong to the partition that distilled them first.
        assert meta4["owned_by_other_partitions"] == 4 and meta4["dagster/row_count"] == 0
        seed_scored(home.warehouse, {"new": "Suggest a name for a friendly robot."}, day=day2)
        batch2, meta5, _ = materialize(tmp_path, instance, resource(servers, mode="batch"), day=day2)
        assert batch2.success and meta5["batch_requests_written"] == 2
        folder = batch_dir(tmp_path, day2, SOURCE)
        assert folder == tmp_path / "distillation" / "batches" / f"{day2}_{SOURCE}"
        assert len(list(folder.glob("requests-*.jsonl"))) == 1
        assert servers["coder"].count == 5 and servers["generalist"].count == 3

    with connect(home.warehouse) as con:
        view = con.execute("SELECT teacher, answers FROM corpus.distillation_cost_per_teacher ORDER BY 1").fetchall()
    assert view == [("coder", 5), ("generalist", 3)]
    assert not any(SECRET in e for e in events)
    assert SECRET not in json.dumps([meta, meta2, meta3, meta4, meta5], default=str)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert not any(SECRET.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_a_missing_key_fails_the_materialization_naming_the_teacher(tmp_path, servers, monkeypatch):
    monkeypatch.delenv("DISTILL_TEST_KEY", raising=False)
    seed_scored(Layout(tmp_path).warehouse)
    with dg.instance_for_test() as instance:
        result, _, events = materialize(tmp_path, instance, resource(servers, judge_api_key_env=""))
    assert not result.success
    assert any("teacher 'coder' needs its API key in $DISTILL_TEST_KEY" in e for e in events)
    assert servers["coder"].count == 0


@pytest.mark.timeout(600)
def test_a_demo_partition_curated_by_the_real_job_then_distilled(tmp_path, servers):
    from corpus_platform.demo.corpus import write_demo_corpus

    home = Layout(tmp_path)
    write_demo_corpus(home.landing, [DAY])
    distill = resource(servers, teachers_json=json.dumps(teachers_config(servers)), judge_api_key_env="",
                       routing_json="", max_instructions=5)
    defs = make_definitions(tmp_path, distillation=distill)
    with dg.instance_for_test() as instance:
        curated = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(DAY, SOURCE), instance=instance, run_config=QUIET, raise_on_error=False)
        assert curated.success
        result, meta, events = materialize(tmp_path, instance, distill)
    assert result.success, events[-5:]
    assert meta["instructions"] == 5 and meta["pairs"] == 10 and meta["kept"] == 5
    with connect(home.warehouse) as con:
        rows = con.execute("SELECT d.teacher, json_extract_string(d.metadata, '$.original_example_id') AS origin, "
                           "s.example_id IS NOT NULL AS found FROM corpus.distilled_examples d LEFT JOIN "
                           "corpus.scored_examples s ON s.example_id = json_extract_string(d.metadata, '$.original_example_id')"
                           ).fetchall()
    assert len(rows) == 5 and all(found for _, _, found in rows)
    # The kept teacher answers join the next splits and exports, on the same side as their original instruction.
    from corpus_platform.curation.datasets import DatasetRules, export_splits, rebuild_splits
    from corpus_platform.curation.export_formats import read_records
    from corpus_platform.curation.splits import SplitSettings

    with connect(home.warehouse) as con:
        rebuild_splits(con, DatasetRules(SplitSettings(train=0.5, val=0.25, test=0.25)))
        sides = con.execute("""SELECT d.split = o.split FROM corpus.distilled_examples x
            JOIN corpus.dataset_splits d ON d.example_id = x.example_id
            JOIN corpus.dataset_splits o ON o.example_id = json_extract_string(x.metadata, '$.original_example_id')""").fetchall()
        answers = [r[0] for r in con.execute("SELECT messages[-1].content FROM corpus.distilled_examples").fetchall()]
        manifest = export_splits(con, home.exports)
    assert len(sides) == 5 and all(same for same, in sides)
    exported = [m["messages"][-1]["content"] for f in manifest["files"] if f["format"] == "openai_chat"
                for m in read_records(home.exports / manifest["version"] / f["path"])]
    assert all(a in exported for a in answers)
