"""OpenAI Batch API files: requests written in the documented shape, results (and per-line errors) read
back with reasons, and batch mode end to end: write -> the user runs the batch -> drop the output ->
the next run ingests it, never calling a teacher."""

from __future__ import annotations

import json

import pytest

from corpus_platform.distillation.batch import (
    BatchRequest, custom_id, parse_custom_id, read_batch_requests, read_batch_results, write_batch_requests,
)
from corpus_platform.distillation.distill import distill_partition
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.distillation.conftest import DAY, INSTRUCTIONS, PRICES, SOURCE, distill_settings, seed_scored

HASH = "0123456789abcdef0123456789abcdef"


def completion(content: str, model: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict:
    return {"id": "chatcmpl-b1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def test_custom_ids_round_trip_and_models_may_hold_colons():
    cid = custom_id(HASH, "coder", "llama3:8b")
    assert parse_custom_id(cid) == (HASH, "coder", "llama3:8b")
    for bad in ["nope", f"{HASH}:coder", "XYZ:coder:m", f"{HASH}::m"]:
        with pytest.raises(ValueError):
            parse_custom_id(bad)


def test_request_file_has_the_batch_api_shape_and_results_are_read_with_reasons(tmp_path):
    path = tmp_path / "requests.jsonl"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    ids = [custom_id(HASH, t, "m") for t in ("a", "b", "c", "d")]
    assert write_batch_requests(path, [BatchRequest(i, body) for i in ids]) == 4
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"custom_id": ids[0], "method": "POST", "url": "/v1/chat/completions", "body": body}
    assert [r.custom_id for r in read_batch_requests(path)] == ids
    with pytest.raises(ValueError, match="duplicate custom_id"):
        write_batch_requests(tmp_path / "dup.jsonl", [BatchRequest(ids[0], body)] * 2)

    out = tmp_path / "batch_123_output.jsonl"
    out.write_text("\n".join([
        json.dumps({"id": "batch_req_1", "custom_id": ids[0], "error": None,
                    "response": {"status_code": 200, "request_id": "req_1", "body": completion("Hello!", "m-2024")}}),
        json.dumps({"id": "batch_req_2", "custom_id": ids[1], "response": None,
                    "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                                                                   "completion window expired."}}),
        json.dumps({"id": "batch_req_3", "custom_id": ids[2], "error": None,
                    "response": {"status_code": 400, "request_id": "req_3",
                                 "body": {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}}}),
        '{"id": "batch_req_4", "custom_id": "' + ids[3] + '", "response": {"status_co',  # cut mid-line
        json.dumps({"id": "batch_req_5", "response": None}),
        "",
    ]) + "\n")
    results, bad = read_batch_results(out)
    by_id = {r.custom_id: r for r in results}
    ok = by_id[ids[0]].answer
    assert ok.status == "ok" and ok.content == "Hello!" and (ok.prompt_tokens, ok.completion_tokens) == (11, 7)
    assert ok.response_model == "m-2024" and by_id[ids[0]].request_id == "req_1"
    assert by_id[ids[1]].answer.status == "error" and "batch_expired" in by_id[ids[1]].answer.error
    assert by_id[ids[2]].answer.error == "batch request failed with HTTP 400: max_tokens is too large"
    assert [(u.line, u.reason.split(":")[0]) for u in bad] == [(4, "not JSON"), (5, "no custom_id")]


def simulate_batch(requests_path, out_path, *, fail: set[str] = frozenset()) -> None:
    """What the Batch API would return for a request file: an answer per line, or an error for `fail` ids."""
    lines = []
    for n, r in enumerate(read_batch_requests(requests_path)):
        if r.custom_id in fail:
            lines.append({"id": f"batch_req_{n}", "custom_id": r.custom_id, "response": None,
                          "error": {"code": "server_error", "message": "The batch worker failed"}})
            continue
        teacher = parse_custom_id(r.custom_id)[1]
        prompt = r.body["messages"][-1]["content"]
        content = f"{teacher} answers: here is a careful, complete reply to '{prompt}'."
        lines.append({"id": f"batch_req_{n}", "custom_id": r.custom_id, "error": None,
                      "response": {"status_code": 200, "request_id": f"req_{n}",
                                   "body": completion(content, r.body["model"], 100, 50)}})
    lines.reverse()  # the Batch API does not keep the input order
    out_path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_batch_mode_writes_requests_then_ingests_the_output_without_calling_a_teacher(tmp_path, servers):
    home = Layout(tmp_path)
    seed_scored(home.warehouse)
    settings = distill_settings(servers, tmp_path, mode="batch")

    def run():
        with connect(home.warehouse) as con:
            return distill_partition(con, DAY, SOURCE, settings, sleep=lambda s: None)

    first = run()
    assert first.batch_requests_written == 8 and len(first.batch_files_written) == 1 and first.kept == 0
    requests_file = settings.batch_dir / first.batch_files_written[0].split("/")[-1]
    bodies = {r.custom_id: r.body for r in read_batch_requests(requests_file)}
    assert all(b["model"] in ("coder-model", "generalist-model") and b["temperature"] == 0.0 for b in bodies.values())
    # Running again before the results arrive writes nothing new: those requests may already be submitted.
    second = run()
    assert second.batch_requests_written == 0 and second.awaiting_batch == 8

    failed = next(i for i in bodies if ":generalist:" in i and INSTRUCTIONS["gen-1"] in json.dumps(bodies[i]))
    simulate_batch(requests_file, settings.batch_dir / "batch_abc_output.jsonl", fail={failed})
    third = run()
    assert third.batch_results_ingested == ["batch_abc_output.jsonl"] and third.asked == 8 and third.errors == 1
    assert servers["coder"].count == servers["generalist"].count == 0  # no teacher was ever called
    with connect(home.warehouse) as con:
        rows = con.execute("SELECT teacher, status, mode, prompt_tokens, completion_tokens, cost_usd, error "
                           "FROM corpus.teacher_answers").pl().to_dicts()
    assert len(rows) == 8 and {r["mode"] for r in rows} == {"batch"}
    for r in rows:
        if r["status"] == "ok":  # the Batch API bills half the online price
            pin, pout = PRICES[r["teacher"]]
            assert r["cost_usd"] == pytest.approx((pin * 100 + pout * 50) / 1e6 * 0.5)
        else:
            assert r["error"] == "batch error server_error: The batch worker failed" and r["cost_usd"] == 0
    # The answers were judged and the winners kept (gen-1's only answer, the coder's 6.0, is below 7);
    # the failed pair went into a new request file.
    assert third.kept == 3 and third.judged == 7
    assert third.batch_requests_written == 1 and not requests_file.exists()
    assert sorted(p.name for p in (settings.batch_dir / "done").iterdir())[-1] == requests_file.name
    assert any(p.name.endswith("batch_abc_output.jsonl") for p in (settings.batch_dir / "done").iterdir())
    retry_file = settings.batch_dir / third.batch_files_written[0].split("/")[-1]
    assert [r.custom_id for r in read_batch_requests(retry_file)] == [failed]
    # Its result arrives: ingested, and the generalist's 9.0 answer now wins gen-1.
    simulate_batch(retry_file, settings.batch_dir / "batch_def_output.jsonl")
    fourth = run()
    assert fourth.asked == 1 and fourth.errors == 0 and fourth.batch_requests_written == 0 and fourth.kept == 4
    with connect(home.warehouse) as con:
        teacher = con.execute("SELECT teacher FROM corpus.distilled_examples WHERE json_extract_string(metadata, "
                              "'$.original_source_id') = 'gen-1'").fetchone()[0]
    assert teacher == "generalist"
    assert run().batch_requests_written == 0  # nothing left to ask


def test_erasing_an_example_removes_its_answers_distilled_rows_verdicts_and_batch_lines(tmp_path, servers):
    from corpus_platform.distillation.erasure import erase_distillation

    home = Layout(tmp_path)
    ids = seed_scored(home.warehouse)
    online = distill_settings(servers, tmp_path)
    with connect(home.warehouse) as con:
        distill_partition(con, DAY, SOURCE, online, sleep=lambda s: None)
    ids = seed_scored(home.warehouse, {**INSTRUCTIONS, "new": "Suggest a name for a friendly robot."})
    batch = distill_settings(servers, tmp_path, mode="batch")
    with connect(home.warehouse) as con:  # the new instruction's two requests wait in a batch file
        distill_partition(con, DAY, SOURCE, batch, sleep=lambda s: None)
    lines_before = sum(len(p.read_text().splitlines()) for p in batch.batch_dir.rglob("*.jsonl"))
    with connect(home.warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        counts = erase_distillation(con, [ids["gen-1"], ids["new"]], tmp_path / "batches")
        con.execute("COMMIT")
        left = con.execute("SELECT count(*) FROM corpus.teacher_answers").fetchone()[0]
        text = json.dumps(con.execute("SELECT * FROM corpus.distilled_examples").pl().to_dicts(), default=str)
        answers = json.dumps(con.execute("SELECT * FROM corpus.teacher_answers").pl().to_dicts(), default=str)
    assert counts == {"teacher_answers": 2, "distilled_examples": 1, "judgments": 2, "batch_file_lines": 2}
    assert left == 6 and "sleep" not in text and "sleep" not in answers and lines_before == 2
    assert not any("robot" in p.read_text() for p in batch.batch_dir.rglob("*.jsonl"))
