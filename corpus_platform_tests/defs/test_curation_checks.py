"""The curation checks of issue 4 on a real Dagster instance: the toxicity share warns without
blocking, the language share blocks, and no_pii_in_exports fails on an export holding PII. (That
every check passes on clean data is shown by the end-to-end demo test.)"""

import json
from datetime import date

import dagster as dg
import polars as pl

from corpus_platform.curation.exports import write_exports
from corpus_platform.definitions import make_definitions
from corpus_platform.defs.curation.checks import no_pii_in_exports
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.demo.run import QUIET
from corpus_platform.schema import examples_frame, make_example
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect

DAY = date(2026, 1, 5)
GOOD = [
    ("How do I boil an egg?", "Place the egg in a pot of cold water, bring it to a boil and cook it for nine minutes."),
    ("What is a variable?", "A variable is a name that refers to a value stored in memory, so a program can change it."),
    ("How do I back up my files?", "Copy your important folders to an external drive or a cloud service, and repeat it weekly."),
    ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters the most, so the sky looks blue."),
    ("What is recursion?", "Recursion is when a function solves a problem by calling itself on a smaller version of it."),
    ("How do plants grow?", "Plants turn sunlight, water and carbon dioxide into sugar, which feeds new leaves and roots."),
]
TOXIC = [("Rate my code.", "Your code is shit and you are a fucking idiot, quit programming."),
         ("Any advice?", "Shut up, you stupid worthless moron, nobody cares about your damn questions.")]
SPANISH = [("¿Qué es una función?", "Una función es un bloque de código con nombre que recibe datos y devuelve un resultado."),
           ("¿Cómo hago café?", "Calienta el agua, añade el café molido y deja reposar la mezcla durante cuatro minutos.")]


def write_logs(home, pairs):
    folder = Layout(home).landing_dir("conversations", DAY.isoformat())
    folder.mkdir(parents=True)
    lines = [json.dumps({"interaction_id": f"i-{k}", "session_id": f"s-{k}", "user_id": "u1",
                         "timestamp": f"2026-01-05T10:{k:02d}:00Z", "user_message": q, "bot_response": a})
             for k, (q, a) in enumerate(pairs)]
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n")


def run_partition(home, curation):
    defs = make_definitions(home, curation=curation)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(DAY, "conversations"), instance=instance, run_config=QUIET, raise_on_error=False)
    return result, {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
                    for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_toxicity_share_warns_and_language_share_blocks(tmp_path):
    write_logs(tmp_path, GOOD + TOXIC + SPANISH)
    # The language rule off for conversations lets the Spanish replies through, for the check to see them.
    curation = CurationSettings(filter_profiles_json='{"conversations": {"language": false}}')
    result, checks = run_partition(tmp_path, curation)
    toxicity = checks["toxicity_share_below_threshold"]
    assert toxicity.passed is False and toxicity.severity == dg.AssetCheckSeverity.WARN
    assert toxicity.metadata["rejected_by_toxicity"].value == 2 and toxicity.metadata["examples"].value == 10
    assert toxicity.metadata["backend"].value == "profanity_check"
    language = checks["language_share"]
    assert language.passed is False and language.metadata["kept"].value == 8  # 6 English, 2 Spanish
    assert language.metadata["share"].value == 0.75
    assert not result.success  # language_share is blocking: dedup did not run
    mats = {e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert mats == {"raw_examples", "filtered_examples"}
    with connect(Layout(tmp_path).warehouse) as con:  # "why was this example dropped?"
        dropped = con.execute("SELECT stage, rule, score, threshold, first_user_text, first_assistant_text "
                              "FROM corpus.why_dropped ORDER BY first_user_text").fetchall()
    assert [(stage, rule, threshold, user) for stage, rule, _, threshold, user, _ in dropped] == [
        ("filter", "toxicity", 0.8, "Any advice?"), ("filter", "toxicity", 0.8, "Rate my code.")]
    assert all(score > 0.8 for _, _, score, *_ in dropped) and dropped[1][5].startswith("Your code is shit")


def export(home, answer):
    row = make_example(source="conversations", source_id="x", day=DAY,
                       messages=[{"role": "user", "content": "Who can I contact?"}, {"role": "assistant", "content": answer}])
    df = examples_frame([row]).with_columns(pl.lit("train").alias("split"), pl.lit("h").alias("content_hash"),
                                            pl.lit(5.0).alias("quality_score"))
    write_exports(df, Layout(home).exports)


def run_pii_check(home):
    defs = dg.Definitions.merge(make_definitions(home), dg.Definitions(
        jobs=[dg.define_asset_job("pii_check", selection=dg.AssetSelection.checks(no_pii_in_exports))]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("pii_check").execute_in_process(instance=instance, raise_on_error=False)
    return next(e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")


def test_no_pii_in_exports_fails_on_a_planted_export_and_passes_on_a_clean_one(tmp_path):
    export(tmp_path / "dirty", "Mail jane.doe@corp.com or call 555-123-4567.")
    dirty = run_pii_check(tmp_path / "dirty")
    assert dirty.passed is False and dirty.blocking
    # once in each train file of the six formats, twice in the CSV (response and messages_json)
    assert dirty.metadata["email_matches"].value == 7 and dirty.metadata["phone_matches"].value == 7
    assert set(dirty.metadata["files_with_pii"].value) == {f"{fmt}/train.{ext}" for fmt, ext in [
        ("openai_chat", "jsonl"), ("alpaca", "json"), ("sharegpt", "json"), ("qwen3_text", "jsonl"), ("csv", "csv"),
        ("parquet", "parquet")]}
    export(tmp_path / "clean", "Mail [EMAIL] or call [PHONE].")
    clean = no_pii_in_exports(corpus_home=CorpusHome(path=str(tmp_path / "clean")))  # direct: the same function
    assert clean.passed is True and clean.metadata["files_scanned"].value == 18  # 6 formats x 3 splits
