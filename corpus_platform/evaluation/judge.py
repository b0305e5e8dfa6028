"""An LLM judge through any OpenAI-compatible endpoint, asked about each pair in both orders.

LLM judges favour whichever answer they read first (or second). Asking twice with the answers swapped
and counting a win only when both orders pick the same model turns that bias into ties instead of
wins; per-answer scores are averaged over the two orders, so the bias cancels there too.
"""

from __future__ import annotations

import json
import re

from corpus_platform.evaluation.stats import LOSS, TIE, WIN

SYSTEM_PROMPT = (
    "You are an impartial judge of assistant answers. Given a conversation and two candidate answers "
    "to its last user message, decide which answer is more helpful, correct and appropriate. "
    'Reply with JSON only: {"winner": "A" | "B" | "tie", "score_a": 1-10, "score_b": 1-10}.'
)


def render_conversation(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def judge_messages(prompt: list[dict], answer_a: str, answer_b: str) -> list[dict]:
    user = (f"## Conversation\n{render_conversation(prompt)}\n\n## Answer A\n{answer_a}\n\n"
            f"## Answer B\n{answer_b}\n\nWhich answer is better? Reply with the JSON object only.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> dict:
    """{"winner": "A"|"B"|"tie", "score_a", "score_b"} from a JSON reply, or from a bare A/B/tie word.
    Anything unreadable is a tie (no evidence either way), flagged as unparsed."""
    text = text or ""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
            winner = str(data.get("winner", "")).strip().upper()
            winner = {"A": "A", "B": "B", "TIE": "tie"}.get(winner)
            if winner:
                scores = [data.get("score_a"), data.get("score_b")]
                scores = [float(s) if isinstance(s, (int, float)) else None for s in scores]
                return {"winner": winner, "score_a": scores[0], "score_b": scores[1], "parsed": True}
        except (json.JSONDecodeError, AttributeError):
            pass
    word = re.search(r"\b(A|B|tie)\b", text, re.IGNORECASE)
    if word:
        winner = word.group(1).upper()
        return {"winner": "tie" if winner == "TIE" else winner, "score_a": None, "score_b": None, "parsed": True}
    return {"winner": "tie", "score_a": None, "score_b": None, "parsed": False}


class Judge:
    """Chat-completions client for one judge model at `base_url` (OpenAI, vLLM, llama.cpp, Ollama...)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0,
                 max_tokens: int = 100):
        from openai import OpenAI

        self.model = model
        self.max_tokens = max_tokens
        # Local servers accept any key; the client refuses to start without one.
        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=2)

    def verdict(self, prompt: list[dict], answer_a: str, answer_b: str) -> dict:
        response = self.client.chat.completions.create(
            model=self.model, messages=judge_messages(prompt, answer_a, answer_b), temperature=0.0,
            max_tokens=self.max_tokens,
        )
        return parse_verdict(response.choices[0].message.content or "")


def _scores(verdict: dict) -> tuple[float, float]:
    """(score of A, score of B): the judge's scores, or 1/0/0.5 from the winner when it gave none."""
    if verdict["score_a"] is not None and verdict["score_b"] is not None:
        return verdict["score_a"], verdict["score_b"]
    return {"A": (1.0, 0.0), "B": (0.0, 1.0)}.get(verdict["winner"], (0.5, 0.5))


def judge_both_orders(judge: Judge, rows: list[dict]) -> list[dict]:
    """For each row (prompt, base, adapter): ask with base as A, then with adapter as A. The adapter wins
    only if both orders prefer it, loses only if both prefer the base; any disagreement is a tie."""
    results = []
    for row in rows:
        first = judge.verdict(row["prompt"], row["base"], row["adapter"])    # A = base
        second = judge.verdict(row["prompt"], row["adapter"], row["base"])   # A = adapter
        adapter_votes = (first["winner"] == "B") + (second["winner"] == "A")
        base_votes = (first["winner"] == "A") + (second["winner"] == "B")
        outcome = WIN if adapter_votes == 2 else LOSS if base_votes == 2 else TIE
        (base_1, adapter_1), (adapter_2, base_2) = _scores(first), _scores(second)
        results.append({
            "index": row["index"], "outcome": outcome,
            "base_score": (base_1 + base_2) / 2, "adapter_score": (adapter_1 + adapter_2) / 2,
            "base_first": first["winner"], "adapter_first": second["winner"],
            "parsed": first["parsed"] and second["parsed"],
        })
    return results
