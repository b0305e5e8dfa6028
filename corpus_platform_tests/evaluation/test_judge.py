"""The LLM judge against a local OpenAI-compatible server: asking in both orders turns a position bias into
ties, while a judge that really prefers the adapter's answers gives wins."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from corpus_platform.evaluation.compare import JUDGE_SKIPPED, evaluate_adapter
from corpus_platform.evaluation.judge import Judge, judge_both_orders, parse_verdict
from corpus_platform.evaluation.stats import TIE, WIN, compare


def biased(answer_a, answer_b):
    """Always prefers whatever it reads first."""
    return {"winner": "A", "score_a": 8, "score_b": 3}


def consistent(answer_a, answer_b):
    """Prefers the answer that says GOOD, wherever it stands."""
    if "GOOD" in answer_a and "GOOD" not in answer_b:
        return {"winner": "A", "score_a": 9, "score_b": 2}
    if "GOOD" in answer_b and "GOOD" not in answer_a:
        return {"winner": "B", "score_a": 2, "score_b": 9}
    return {"winner": "tie", "score_a": 5, "score_b": 5}


class JudgeServer:
    """POST /v1/chat/completions on 127.0.0.1 in the OpenAI wire format, answering with `policy`."""

    def __init__(self, policy):
        self.policy, self.requests = policy, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                answer_a = user.split("## Answer A\n", 1)[1].split("\n\n## Answer B\n", 1)[0]
                answer_b = user.split("## Answer B\n", 1)[1].split("\n\nWhich answer", 1)[0]
                server.requests.append({"model": body["model"], "a": answer_a, "b": answer_b,
                                        "auth": self.headers.get("Authorization")})
                reply = json.dumps({
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": json.dumps(server.policy(answer_a, answer_b))}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    servers = []

    def start(policy):
        servers.append(JudgeServer(policy))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


ROWS = [{"index": i, "prompt": [{"role": "user", "content": f"Question {i}?"}],
         "base": f"plain answer {i}", "adapter": f"GOOD answer {i}"} for i in range(6)]


def test_a_position_biased_judge_yields_ties_not_wins(judge_server):
    server = judge_server(biased)
    verdicts = judge_both_orders(Judge(server.url, "judge-model", api_key="secret"), ROWS)
    assert [v["outcome"] for v in verdicts] == [TIE] * len(ROWS)
    assert all(v["base_score"] == v["adapter_score"] for v in verdicts)  # the bias cancels in the scores too
    # Each pair was asked twice, once with each answer first.
    assert len(server.requests) == 2 * len(ROWS)
    assert [(r["a"], r["b"]) for r in server.requests[:2]] == [("plain answer 0", "GOOD answer 0"),
                                                               ("GOOD answer 0", "plain answer 0")]
    assert {r["model"] for r in server.requests} == {"judge-model"}
    assert {r["auth"] for r in server.requests} == {"Bearer secret"}
    stats = compare([v["base_score"] for v in verdicts], [v["adapter_score"] for v in verdicts],
                    higher_is_better=True, outcomes=[v["outcome"] for v in verdicts], n_resamples=1000)
    assert stats["win_rate"] == 0.5 and stats["wins"] == 0 and stats["cohens_d"] == 0.0


def test_a_consistent_judge_yields_wins(judge_server):
    server = judge_server(consistent)
    verdicts = judge_both_orders(Judge(server.url, "judge-model"), ROWS)
    assert [v["outcome"] for v in verdicts] == [WIN] * len(ROWS)
    assert all(v["adapter_score"] == 9 and v["base_score"] == 2 for v in verdicts)


def test_verdict_parsing():
    assert parse_verdict('{"winner": "B", "score_a": 3, "score_b": 7}') == {"winner": "B", "score_a": 3.0, "score_b": 7.0, "parsed": True}
    assert parse_verdict('Sure! ```json\n{"winner": "tie"}\n```')["winner"] == "tie"
    assert parse_verdict("A")["winner"] == "A"
    assert parse_verdict("I cannot decide.") == {"winner": "tie", "score_a": None, "score_b": None, "parsed": False}


def test_evaluate_adapter_with_and_without_a_judge(tracked_adapter, tiny_model_dir, judge_server):
    test_path = tracked_adapter["val"]  # 4 held-out arithmetic conversations
    kwargs = dict(max_seq_len=64, batch_size=4, max_new_tokens=4, n_resamples=500)
    result, rows = evaluate_adapter(tiny_model_dir, tracked_adapter["out"], test_path, **kwargs)
    assert result["judge"] == {"status": JUDGE_SKIPPED}
    assert result["statistics"]["source"].startswith("per-example NLL") and result["statistics"]["n"] == 4
    assert {"p_value", "cohens_d", "win_rate", "win_rate_ci", "mann_whitney_u"} <= set(result["statistics"])
    assert len(rows) == 4 and all(set(r) >= {"prompt", "reference", "base", "adapter", "adapter_token_f1"} for r in rows)
    assert result["generations"]["examples"] == 4 and 0 <= result["generations"]["adapter"]["rouge_l"] <= 1

    server = judge_server(biased)
    judged, rows = evaluate_adapter(tiny_model_dir, tracked_adapter["out"], test_path,
                                    judge=Judge(server.url, "judge-model"), **kwargs)
    assert judged["judge"]["status"] == "ran" and judged["judge"]["ties"] == 4 and judged["judge"]["wins"] == 0
    assert judged["statistics"]["source"].startswith("LLM judge") and judged["statistics"]["win_rate"] == 0.5
    assert judged["statistics_nll"] == result["statistics_nll"]  # NLL statistics are always reported too
    assert all(r["judge"]["outcome"] == TIE for r in rows)
