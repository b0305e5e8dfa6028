"""write_exports: every training format per split (OpenAI chat JSONL validated against OpenAI's rules,
Alpaca, ShareGPT, Qwen3 chat-template text, CSV, Parquet), content-addressed, byte-deterministic and
written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.export_formats import (ALL_FORMATS, THINK_BLOCK, openai_chat_tokens,
                                                     proxy_chat_tokens, proxy_token_count, read_records,
                                                     render_qwen3, validate_openai_chat)
from corpus_platform.curation.exports import LATEST, export_version, latest_export, write_exports
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 6)
AT = datetime(2026, 1, 6, 0, 0)


def ex(source_id: str, *turns: tuple[str, str]) -> dict:
    return make_example(source="conversations", source_id=source_id, day=DAY, collected_at=AT,
                        messages=[{"role": r, "content": c} for r, c in turns])


def export_frame(rows: list[tuple[dict, str]]) -> pl.DataFrame:
    """What training_exports reads: example_id, split, content_hash, messages, source, quality_score."""
    df = with_content_hash(examples_frame([r for r, _ in rows]))
    splits = pl.DataFrame({"example_id": [r["example_id"] for r, _ in rows], "split": [s for _, s in rows],
                           "quality_score": [1.0 + i * 0.5 for i in range(len(rows))]})
    return df.join(splits, on="example_id").select("example_id", "split", "content_hash", "messages", "source",
                                                   "quality_score")


ROWS = [
    (ex(f"train-{i}", ("user", f"Question {i}?"), ("assistant", f"Answer {i}, café ☕.")), "train") for i in range(5)
] + [
    (ex("multi", ("system", "Be terse."), ("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2")),
     "val"),
    (ex("test-0", ("user", "Final?"), ("assistant", "Yes.")), "test"),
    (ex("test-1", ("user", "Another?"), ("assistant", "Sure.")), "test"),
]


@pytest.fixture
def df() -> pl.DataFrame:
    return export_frame(ROWS)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_openai_chat_lines_are_messages_in_example_id_order(df, tmp_path):
    manifest = write_exports(df.reverse(), tmp_path)
    out = tmp_path / manifest["version"]
    for split in ("train", "val", "test"):
        expected = df.filter(pl.col("split") == split).sort("example_id")
        lines = read_jsonl(out / "openai_chat" / f"{split}.jsonl")
        assert lines == [{"messages": m} for m in expected["messages"].to_list()]
        assert all(list(line) == ["messages"] for line in lines)
    first = read_jsonl(out / "openai_chat" / "train.jsonl")[0]
    assert first["messages"][0] == {"role": "user", "content": first["messages"][0]["content"]}
    assert "café ☕" in first["messages"][1]["content"]


def test_alpaca_maps_turns(df, tmp_path):
    out = tmp_path / write_exports(df, tmp_path)["version"]
    val = json.loads((out / "alpaca" / "val.json").read_text(encoding="utf-8"))
    assert val == [{"instruction": "u2", "input": "", "output": "a2", "system": "Be terse.", "history": [["u1", "a1"]]}]
    test = json.loads((out / "alpaca" / "test.json").read_text(encoding="utf-8"))
    order = df.filter(pl.col("split") == "test").sort("example_id")["messages"].to_list()
    assert test == [{"instruction": m[0]["content"], "input": "", "output": m[1]["content"]} for m in order]
    assert all("system" not in r and "history" not in r for r in test)


def test_alpaca_merges_consecutive_user_turns_and_skips_unanswered_tail(tmp_path):
    row = ex("x", ("user", "part one"), ("user", "part two"), ("assistant", "reply"), ("user", "hanging"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text()) == [
        {"instruction": "part one\n\npart two", "input": "", "output": "reply"}
    ]


def test_conversation_without_a_user_to_assistant_exchange_is_refused_clearly(tmp_path):
    """The filter rule `ends_with_assistant_reply` rejects these before export; exporting one anyway
    fails with a clear error instead of an unpacking crash."""
    row = ex("greeting-first", ("assistant", "Hello! How can I help you today?"), ("user", "Tell me about cats."))
    with pytest.raises(ValueError, match="no user -> assistant exchange") as err:
        write_exports(export_frame([(row, "train")]), tmp_path)
    assert row["example_id"] in str(err.value) and "alpaca" in str(err.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # the temporary dir is removed
    assert write_exports(export_frame([(row, "train")]), tmp_path, formats=("openai_chat",))["counts"]["train"] == 1


def test_leading_greeting_is_left_out_of_alpaca_only(tmp_path):
    row = ex("greeting", ("assistant", "Hi! Ask me anything."), ("user", "Q"), ("assistant", "A"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text()) == [{"instruction": "Q", "input": "", "output": "A"}]
    assert len(json.loads((out / "openai_chat" / "train.jsonl").read_text())["messages"]) == 3


def test_consecutive_assistant_turns_are_merged_into_the_output(tmp_path):
    row = ex("two-replies", ("user", "Q"), ("assistant", "first reply"), ("assistant", "second reply"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text())[0]["output"] == "first reply\n\nsecond reply"


def test_manifest_counts_and_hashes_match_files(df, tmp_path):
    manifest = write_exports(df, tmp_path)
    out = tmp_path / manifest["version"]
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 5, "val": 1, "test": 2}
    assert manifest["formats"] == list(ALL_FORMATS) and manifest["think_block"] is False
    assert [(f["format"], f["split"]) for f in manifest["files"]] == [
        (fmt, s) for s in ("train", "val", "test") for fmt in ALL_FORMATS]
    for f in manifest["files"]:
        path = out / f["path"]
        assert set(f) == {"format", "split", "path", "rows", "sha256"}
        assert not Path(f["path"]).is_absolute() and path.is_file() and f["path"].startswith(f["format"] + "/")
        assert f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert f["rows"] == len(read_records(path)) == manifest["counts"][f["split"]]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [f["path"] for f in manifest["files"]] + ["manifest.json"])


def test_empty_split_still_written(tmp_path):
    manifest = write_exports(export_frame(ROWS[:2]), tmp_path)
    out = tmp_path / manifest["version"]
    assert manifest["counts"] == {"train": 2, "val": 0, "test": 0}
    assert (out / "openai_chat" / "val.jsonl").read_text() == ""
    assert (out / "qwen3_text" / "val.jsonl").read_text() == ""
    assert json.loads((out / "alpaca" / "test.json").read_text()) == []
    assert json.loads((out / "sharegpt" / "test.json").read_text()) == []
    assert (out / "csv" / "val.csv").read_text().splitlines() == [
        "example_id,split,source,quality_score,prompt,response,messages_json"]
    empty = pl.read_parquet(out / "parquet" / "test.parquet")
    assert empty.height == 0 and empty.columns == ["example_id", "split", "source", "quality_score", "content_hash",
                                                   "messages"]


def test_export_version_stable_and_data_sensitive(df):
    v = export_version(df)
    assert len(v) == 12 and all(c in "0123456789abcdef" for c in v)
    assert export_version(df) == v
    assert export_version(df.reverse()) == v
    assert export_version(df.sample(fraction=1.0, shuffle=True, seed=3)) == v
    moved = df.with_columns(pl.when(pl.col("split") == "val").then(pl.lit("train")).otherwise("split").alias("split"))
    assert export_version(moved) != v
    rehashed = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("0" * 64))
                               .otherwise("content_hash").alias("content_hash"))
    assert export_version(rehashed) != v
    assert export_version(df.slice(1)) != v
    assert len({export_version(df), export_version(moved), export_version(rehashed), export_version(df.slice(1))}) == 4
    rescored = df.with_columns(pl.col("quality_score") + pl.when(pl.int_range(pl.len()) == 0).then(0.5).otherwise(0))
    resourced = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("public")).otherwise("source")
                                .alias("source"))
    assert len({v, export_version(rescored), export_version(resourced)}) == 3  # CSV/Parquet carry both columns


def test_settings_are_part_of_the_version(df, tmp_path):
    v = export_version(df)
    assert export_version(df, think_block=True) != v
    assert export_version(df, formats=("openai_chat",)) != v
    assert export_version(df, formats=("alpaca", "openai_chat")) == export_version(df, formats=("openai_chat", "alpaca"))
    assert export_version(df, formats=[*reversed(ALL_FORMATS), "csv"]) == v  # order and duplicates do not matter
    plain, think = write_exports(df, tmp_path), write_exports(df, tmp_path, think_block=True)
    assert plain["version"] != think["version"] and think["think_block"] is True
    assert latest_export(tmp_path).name == think["version"]
    plain_lines = read_jsonl(tmp_path / plain["version"] / "qwen3_text" / "train.jsonl")
    assert plain_lines and not any("<think>" in line["text"] for line in plain_lines)
    lines = read_jsonl(tmp_path / think["version"] / "qwen3_text" / "train.jsonl")
    assert all("<|im_start|>assistant\n" + THINK_BLOCK in line["text"] for line in lines)
    subset = write_exports(df, tmp_path, formats=("parquet", "openai_chat"))
    assert subset["formats"] == ["openai_chat", "parquet"]
    assert sorted(p.name for p in (tmp_path / subset["version"]).iterdir()) == ["manifest.json", "openai_chat", "parquet"]
    with pytest.raises(ValueError, match="'xml'"):
        write_exports(df, tmp_path, formats=("openai_chat", "xml"))
    with pytest.raises(ValueError, match="export formats"):
        write_exports(df, tmp_path, formats=())


def test_missing_source_or_quality_score_is_refused_with_the_columns_named(df, tmp_path):
    with pytest.raises(ValueError, match=r"lacks columns \['source', 'quality_score'\]"):
        write_exports(df.drop("source", "quality_score"), tmp_path)
    assert not list(tmp_path.iterdir())


def test_writing_same_data_twice_reuses_directory(df, tmp_path):
    first = write_exports(df, tmp_path)
    out = tmp_path / first["version"]
    before = tree(out)
    mtime = (out / "manifest.json").stat().st_mtime_ns
    second = write_exports(df.reverse(), tmp_path)
    assert second == first
    assert tree(out) == before
    assert (out / "manifest.json").stat().st_mtime_ns == mtime  # not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first["version"], LATEST])


def test_latest_points_to_newest_and_no_tmp_remains(df, tmp_path):
    a = write_exports(df, tmp_path)["version"]
    assert (tmp_path / LATEST).read_text().strip() == a
    assert latest_export(tmp_path) == tmp_path / a
    b = write_exports(export_frame(ROWS[:3]), tmp_path)["version"]
    assert b != a
    assert latest_export(tmp_path) == tmp_path / b
    assert write_exports(df, tmp_path)["version"] == a  # rewriting older data makes it the newest again
    assert latest_export(tmp_path) == tmp_path / a
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([a, b, LATEST])
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_stale_partial_directory_is_replaced(df, tmp_path):
    version = export_version(df)
    partial = tmp_path / version / "openai_chat"
    partial.mkdir(parents=True)
    (partial / "train.jsonl").write_text("garbage\n")
    manifest = write_exports(df, tmp_path)
    out = tmp_path / version
    assert (out / "manifest.json").exists()
    assert read_jsonl(out / "openai_chat" / "train.jsonl")[0].keys() == {"messages"}
    assert manifest["counts"]["train"] == 5


def test_latest_export_without_export_raises_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no export yet") as err:
        latest_export(tmp_path / "exports")
    assert str(tmp_path / "exports") in str(err.value)


# --- OpenAI chat validation (the rules of OpenAI's chat fine-tuning data-prep cookbook)

GOOD = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                     {"role": "assistant", "content": "Hello.", "weight": 1, "name": "bot"}]}


def errors(records, **kw) -> list[tuple[int, str]]:
    return [(i["line"], i["error"]) for i in validate_openai_chat(records, **kw)]


def test_valid_records_have_no_issues():
    assert validate_openai_chat([GOOD, {"messages": [{"role": "user", "content": "a"},
                                                     {"role": "assistant", "content": "b", "weight": 0}]}]) == []


@pytest.mark.parametrize("record, rule", [
    (["messages"], "data_type"),
    ({}, "missing_messages_list"),
    ({"messages": []}, "missing_messages_list"),
    ({"messages": "hi"}, "missing_messages_list"),
    ({**GOOD, "id": "x"}, "record_unrecognized_key"),
    ({"messages": ["hi", {"role": "assistant", "content": "a"}]}, "message_data_type"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
    ({"messages": [{"role": "user", "content": "q", "tool_calls": []}, {"role": "assistant", "content": "a"}]},
     "message_unrecognized_key"),
    ({"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
     "example_missing_assistant_message"),
    ({"messages": [{"role": "user", "content": "q", "name": ""}, {"role": "assistant", "content": "a"}]},
     "invalid_name"),
    ({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]},
     "invalid_weight"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
     "invalid_weight"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": True}]},
     "invalid_weight"),
])
def test_each_rule_is_flagged_on_its_line(record, rule):
    issues = validate_openai_chat([GOOD, record, GOOD])
    assert (2, rule) in [(i["line"], i["error"]) for i in issues]
    assert {i["line"] for i in issues} == {2} and all(i["severity"] == "error" and i["detail"] for i in issues)


def test_token_limit_is_a_warning_counted_by_proxy_or_a_supplied_tokenizer():
    assert proxy_token_count("Hello, world! It's 2026.") == 9  # Hello , world ! It ' s 2026 .
    # the cookbook's accounting: 3 priming + per message 3 + role + content (+1 and the name when named)
    assert validate_openai_chat([GOOD], max_tokens=20) == [
        {"line": 1, "error": "too_many_tokens", "detail": "24 tokens > 20: truncated in fine-tuning",
         "severity": "warning"}]
    assert validate_openai_chat([GOOD], max_tokens=24) == []
    conversations = [[{"role": "user", "content": text}, {"role": "assistant", "content": "ok", "name": name}]
                     for text, name in [("café ☕ naïve 東京 x_y, 3.5%!", "bot"), ("  \n\t", None), ("a-b—c…d", "x y")]]
    vectorized = proxy_chat_tokens(pl.Series(conversations))  # what write_exports uses: Polars' regex, same rule
    assert vectorized == [openai_chat_tokens([{k: v for k, v in m.items() if v is not None} for m in c])
                          for c in conversations]
    by_chars = validate_openai_chat([GOOD], count_tokens=len, max_tokens=40)
    assert [(i["error"], i["detail"].split()[0]) for i in by_chars] == [("too_many_tokens", "53")]


def test_an_invalid_conversation_is_refused_naming_example_and_rule(tmp_path):
    bad = ex("empty-reply", ("user", "Q?"), ("assistant", ""))
    frame = export_frame([*ROWS[:2], (bad, "val")])
    with pytest.raises(ValueError, match="missing_content") as err:
        write_exports(frame, tmp_path, formats=("openai_chat",))
    assert f"example {bad['example_id']} (val)" in str(err.value) and "message 1" in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing written, no temporary dir left


def test_manifest_holds_the_validation_summary(df, tmp_path):
    summary = write_exports(df, tmp_path)["validation"]
    assert summary["errors"] == 0 and summary["examples"] == 8 and summary["over_token_limit"] == 0
    assert summary["messages"] == sum(len(m) for m in df["messages"].to_list()) == 5 * 2 + 5 + 2 * 2
    assert summary["token_limit"] == 16385 and "regex proxy" in summary["token_counter"]
    assert summary["splits"]["test"]["examples"] == 2 and summary["splits"]["val"]["messages"] == 5
    tokens = [validate_openai_chat([{"messages": m}], max_tokens=0)[0]["detail"] for m in df["messages"].to_list()]
    counts = sorted(int(t.split()[0]) for t in tokens)
    assert summary["tokens"] == {"min": counts[0], "max": counts[-1], "total": sum(counts),
                                 "mean": round(sum(counts) / 8, 2), "p50": counts[3], "p95": counts[7]}
    assert summary["splits"]["val"]["tokens"]["total"] + summary["splits"]["train"]["tokens"]["total"] + \
        summary["splits"]["test"]["tokens"]["total"] == sum(counts)


# --- Qwen3 chat-template text

def test_render_qwen3_literal():
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}]
    assert render_qwen3(msgs, think_block=False) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n")
    assert render_qwen3(msgs, think_block=True) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>\n")
    multi = [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
             {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}]
    assert render_qwen3(multi, think_block=True) == (
        "<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\na1<|im_end|>\n"
        "<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\na2<|im_end|>\n")
    reasoned = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nA"}]
    assert render_qwen3(reasoned, think_block=True) == render_qwen3(reasoned, think_block=False)


def test_qwen3_text_file_is_the_rendered_conversations(df, tmp_path):
    out = tmp_path / write_exports(df, tmp_path, think_block=True)["version"]
    for split in ("train", "val", "test"):
        expected = df.filter(pl.col("split") == split).sort("example_id")["messages"].to_list()
        assert read_jsonl(out / "qwen3_text" / f"{split}.jsonl") == [{"text": render_qwen3(m, True)} for m in expected]


# Qwen3's chat template (tokenizer_config.json of the Qwen3 models) without its tool branches, which this
# platform's system/user/assistant conversations never reach.
QWEN3_TEMPLATE = textwrap.dedent("""\
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
    {%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
    {%- for message in messages[::-1] %}
        {%- set index = (messages|length - 1) - loop.index0 %}
        {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
            {%- set ns.multi_step_tool = false %}
            {%- set ns.last_query_index = index %}
        {%- endif %}
    {%- endfor %}
    {%- for message in messages %}
        {%- if message.content is string %}
            {%- set content = message.content %}
        {%- else %}
            {%- set content = '' %}
        {%- endif %}
        {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
            {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
        {%- elif message.role == "assistant" %}
            {%- set reasoning_content = '' %}
            {%- if message.reasoning_content is string %}
                {%- set reasoning_content = message.reasoning_content %}
            {%- else %}
                {%- if '</think>' in content %}
                    {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                    {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
                {%- endif %}
            {%- endif %}
            {%- if loop.index0 > ns.last_query_index %}
                {%- if loop.last or (not loop.last and reasoning_content) %}
                    {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
                {%- else %}
                    {{- '<|im_start|>' + message.role + '\\n' + content }}
                {%- endif %}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endfor %}
    {%- if add_generation_prompt %}
        {{- '<|im_start|>assistant\\n' }}
        {%- if enable_thinking is defined and enable_thinking is false %}
            {{- '<think>\\n\\n</think>\\n\\n' }}
        {%- endif %}
    {%- endif %}
""")


def test_render_qwen3_matches_apply_chat_template_offline():
    """Checked against transformers' own Jinja rendering (a word-level tokenizer built in memory: no download).
    think_block=True equals Qwen3's template on single-turn conversations; on multi-turn ones Qwen3 keeps the
    think block on the final answer only. think_block=False equals plain ChatML (the training code's template)."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from corpus_platform.training.models import CHATML_TEMPLATE

    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))

    def apply(template, messages):
        return tok.apply_chat_template(messages, chat_template=template, tokenize=False)

    single = [[{"role": "user", "content": "Hi, café ☕?"}, {"role": "assistant", "content": "Hello.\n\nBye."}],
              [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q"},
               {"role": "assistant", "content": "A"}]]
    multi = [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"},
             {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
             {"role": "assistant", "content": "a2"}]
    for messages in [*single, multi]:
        assert render_qwen3(messages, think_block=False) == apply(CHATML_TEMPLATE, messages)
    for messages in single:
        assert render_qwen3(messages, think_block=True) == apply(QWEN3_TEMPLATE, messages)
    ours = render_qwen3(multi, think_block=True)
    assert ours.count(THINK_BLOCK) == 2
    assert ours.replace("assistant\n" + THINK_BLOCK + "a1", "assistant\na1") == apply(QWEN3_TEMPLATE, multi)


# --- ShareGPT, CSV, Parquet

def test_sharegpt_maps_roles(df, tmp_path):
    out = tmp_path / write_exports(df, tmp_path)["version"]
    val = json.loads((out / "sharegpt" / "val.json").read_text(encoding="utf-8"))
    assert val == [{"id": ROWS[5][0]["example_id"], "conversations": [
        {"from": "system", "value": "Be terse."}, {"from": "human", "value": "u1"}, {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "u2"}, {"from": "gpt", "value": "a2"}]}]
    train = json.loads((out / "sharegpt" / "train.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in train] == sorted(df.filter(pl.col("split") == "train")["example_id"])


def test_csv_has_last_turns_and_the_full_conversation(tmp_path):
    row = ex("csv", ("system", "S"), ("user", "first, \"quoted\""), ("assistant", "a1\nsecond line"),
             ("user", "last q"), ("assistant", "last a, café"))
    frame = export_frame([(row, "train"), *ROWS[:2]])
    out = tmp_path / write_exports(frame, tmp_path)["version"]
    csv = pl.read_csv(out / "csv" / "train.csv", infer_schema=False)
    assert csv.columns == ["example_id", "split", "source", "quality_score", "prompt", "response", "messages_json"]
    assert csv["example_id"].to_list() == sorted(frame["example_id"])
    got = csv.filter(pl.col("example_id") == row["example_id"]).row(0, named=True)
    assert got["prompt"] == "last q" and got["response"] == "last a, café" and got["split"] == "train"
    assert got["source"] == "conversations" and float(got["quality_score"]) == 1.0
    assert json.loads(got["messages_json"]) == row["messages"]


def test_parquet_schema_and_rows(df, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / write_exports(df, tmp_path)["version"]
    table = pq.read_table(out / "parquet" / "val.parquet")
    assert str(table.schema.field("messages").type) == "list<element: struct<role: string, content: string>>"
    assert table.column_names == ["example_id", "split", "source", "quality_score", "content_hash", "messages"]
    expected = df.filter(pl.col("split") == "val").sort("example_id")
    assert table.to_pylist() == expected.select(table.column_names).to_dicts()
    assert pq.ParquetFile(out / "parquet" / "val.parquet").metadata.row_group(0).column(0).compression == "UNCOMPRESSED"


# --- determinism

def test_row_order_never_changes_a_byte(df, tmp_path):
    a = write_exports(df, tmp_path / "a", think_block=True)
    b = write_exports(df.sample(fraction=1.0, shuffle=True, seed=7), tmp_path / "b", think_block=True)
    c = write_exports(df.reverse(), tmp_path / "c", think_block=True)
    assert a == b == c
    trees = [tree(tmp_path / r / a["version"]) for r in "abc"]
    assert trees[0] == trees[1] == trees[2] and len(trees[0]) == 3 * len(ALL_FORMATS) + 1
    for name, data in trees[0].items():  # nothing about the machine or the run inside any file
        assert str(tmp_path).encode() not in data and b".tmp-" not in data and b"LATEST" not in data, name


def test_another_process_writes_identical_bytes(df, tmp_path):
    """Parquet and every other file: byte-identical when written by a separate interpreter (another pid)."""
    df.sample(fraction=1.0, shuffle=True, seed=11).write_parquet(tmp_path / "input.parquet")
    script = ("import sys, polars as pl; from pathlib import Path; "
              "from corpus_platform.curation.exports import write_exports; "
              "write_exports(pl.read_parquet(sys.argv[1]), Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "input.parquet"), str(tmp_path / "other")],
                   check=True, env={**os.environ, "POLARS_MAX_THREADS": "1"})
    version = write_exports(df, tmp_path / "here")["version"]
    assert tree(tmp_path / "other" / version) == tree(tmp_path / "here" / version)
