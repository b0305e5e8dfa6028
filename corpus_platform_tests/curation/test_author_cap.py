"""The author cap keeps each author's best examples up to the source's cap and names the rest."""

import json
from datetime import date

import polars as pl

from corpus_platform.curation.datasets import _author_cap

DAY = date(2026, 1, 1)


def frame(rows):
    return pl.DataFrame({"example_id": [r[0] for r in rows], "source": [r[1] for r in rows], "date": [DAY] * len(rows),
                         "metadata": [json.dumps(r[2]) for r in rows], "quality_score": [r[3] for r in rows],
                         "content_hash": [r[0] for r in rows]})


def test_cap_keeps_the_best_per_author_and_source():
    rows = [(f"a{i}", "reddit", {"author": "alice"}, float(i)) for i in range(5)]
    rows += [("b0", "reddit", {"author": "bob"}, 1.0), ("n0", "reddit", {}, 1.0)]
    rows += [(f"t{i}", "twitter", {"author": "alice"}, 5.0) for i in range(3)]
    kept, capped = _author_cap(frame(rows), {"reddit": 2, "*": 0})
    assert sorted(capped["example_id"]) == ["a0", "a1", "a2"]  # alice's three lowest-quality reddit examples
    assert sorted(kept["example_id"]) == ["a3", "a4", "b0", "n0", "t0", "t1", "t2"]  # twitter uncapped, no author kept
    assert (capped["_nth"] >= 2).all() and (capped["_cap"] == 2).all()
    assert kept.columns == frame(rows).columns


def test_nobody_over_the_cap_returns_the_frame_unchanged():
    df = frame([(f"a{i}", "reddit", {"author": f"u{i}"}, 5.0) for i in range(4)])
    kept, capped = _author_cap(df, {"*": 1})
    assert kept.equals(df) and capped.height == 0
