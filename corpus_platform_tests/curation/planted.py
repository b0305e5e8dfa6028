"""A corpus with planted problems of known classes, for the curation "caught class by class" tests.

Base documents are English paragraphs composed from a seeded sentence grammar, so every filter passes
them. Near duplicates are word-edited copies whose measured 5-word-shingle Jaccard with their original
lies in [0.80, 0.95]; hard negatives in [0.50, 0.70]; exact duplicates are verbatim copies; PII, toxic
lines and evaluation-set overlaps are planted into distinct base documents. Copies go to other days
than their originals, so the cross-partition index does the finding.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from corpus_platform.curation.minhash import shingle_hashes

SUBJECTS = ("the gardener", "my neighbour", "a young engineer", "the old librarian", "our team lead", "the baker",
            "a curious student", "the night nurse", "the city council", "a retired pilot", "the museum guide",
            "her brother", "the ferry captain", "a local farmer", "the choir director", "the new intern")
VERBS = ("repaired", "described", "painted", "measured", "borrowed", "designed", "cleaned", "planned", "photographed",
         "sold", "carried", "inspected", "collected", "explained", "rebuilt", "delivered")
OBJECTS = ("a wooden bridge", "the broken clock", "three blue bicycles", "an enormous map", "the winter garden",
           "a small sailing boat", "the lighthouse stairs", "twelve glass jars", "the village archive",
           "a copper kettle", "the tram schedule", "an abandoned greenhouse", "the festival posters",
           "a stack of letters", "the mountain cabin", "two silver lanterns")
TAILS = ("before the storm arrived", "with surprising patience", "during the long summer evenings",
         "after the market had closed", "because nobody else would", "while the children watched",
         "near the harbour wall", "for the spring festival", "without asking for help", "in less than an hour",
         "on a quiet Sunday morning", "despite the heavy rain", "as the bells rang", "under a pale moon")
TOPICS = ("village life", "old crafts", "the harbour", "seasonal work", "public spaces", "local history")


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def jaccard(a: str, b: str) -> float:
    h, off = shingle_hashes(pl.Series([a, b]))
    x, y = set(h[off[0]:off[1]].tolist()), set(h[off[1]:off[2]].tolist())
    return len(x & y) / len(x | y)


def edited(rng: random.Random, text: str, lo: float, hi: float) -> str:
    """A copy of `text` with words replaced until its Jaccard with `text` falls in [lo, hi]."""
    for _ in range(200):
        words = text.split()
        k = 1
        while True:
            copy = list(words)
            for i in rng.sample(range(len(words)), k):
                copy[i] = rng.choice(("bright", "quietly", "seven", "northern", "gentle", "rusty", "famous", "tiny"))
            j = jaccard(text, " ".join(copy))
            if lo <= j <= hi:
                return " ".join(copy)
            if j < lo:
                break
            k += 1
    raise RuntimeError("could not reach the Jaccard band")


@dataclass
class Planted:
    days: list[date]
    records: dict[date, list[dict]] = field(default_factory=dict)
    truth: dict[str, list] = field(default_factory=dict)  # class -> [(text_key, ...)]
    eval_records: list[dict] = field(default_factory=list)


def _record(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def build(seed: int = 11, days: int = 4, per_day: int = 60) -> Planted:
    rng = random.Random(seed)
    start = date(2026, 2, 1)
    p = Planted([start + timedelta(d) for d in range(days)])
    base: list[tuple[date, str, str]] = []
    seen: set[str] = set()
    for day in p.days:
        p.records[day] = []
        while len(p.records[day]) < per_day:
            q = f"Tell me a short story about {rng.choice(TOPICS)} number {rng.randrange(10**6)}."
            a = paragraph(rng, rng.randint(7, 10))
            if a in seen:
                continue
            seen.add(a)
            base.append((day, q, a))
            p.records[day].append(_record(q, a))
    for key in ("exact", "near", "hard_negative", "pii", "toxic", "eval_overlap"):
        p.truth[key] = []
    picks = rng.sample(range(len(base)), 60)
    other_day = lambda d: rng.choice([x for x in p.days if x != d])  # noqa: E731
    for n, i in enumerate(picks):
        day, q, a = base[i]
        if n < 10:  # exact duplicate on another day
            p.records[other_day(day)].append(_record(q, a))
            p.truth["exact"].append(a)
        elif n < 25:  # near duplicate (0.80-0.95) on another day
            copy = edited(rng, a, 0.80, 0.95)
            p.records[other_day(day)].append(_record(q, copy))
            p.truth["near"].append((a, copy, jaccard(a, copy)))
        elif n < 35:  # hard negative (0.50-0.70): both must be kept
            copy = edited(rng, a, 0.50, 0.70)
            p.records[other_day(day)].append(_record(q + " Another one, please.", copy))
            p.truth["hard_negative"].append((a, copy, jaccard(a, copy)))
        elif n < 43:  # PII in the answer
            text = a + f" You can write to ferry.office{n}@example.org or call +1 415 555 01{n:02d}."
            p.records[day][p.records[day].index(_record(q, a))] = _record(q, text)
            p.truth["pii"].append(text)
        elif n < 51:  # toxic line
            text = a + " Honestly, you are a fucking idiot and this is shit, you stupid moron."
            p.records[day][p.records[day].index(_record(q, a))] = _record(q, text)
            p.truth["toxic"].append(text)
        else:  # a 20-word span of the answer appears in the evaluation file
            span = " ".join(a.split()[5:25])
            p.eval_records.append({"question": "Continue the story.", "answer": span})
            p.truth["eval_overlap"].append(a)
    return p


def write(p: Planted, home: Path) -> None:
    for day, records in p.records.items():
        folder = home / "landing" / "public" / str(day)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "openai_messages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (home / "eval_sets").mkdir(parents=True, exist_ok=True)
    (home / "eval_sets" / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in p.eval_records))


def answers(df: pl.DataFrame) -> set[str]:
    return {m[-1]["content"] for m in df["messages"].to_list()}

