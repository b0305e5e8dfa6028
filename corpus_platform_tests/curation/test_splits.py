"""assign_splits: deterministic, group-preserving, ratio-honouring train/val/test assignment."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.splits import SplitSettings, assign_splits
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 5)
AT = datetime(2026, 1, 5, 0, 0)
MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def ex(source_id: str, source: str = "conversations", **metadata) -> dict:
    return make_example(source=source, source_id=source_id, day=DAY, collected_at=AT, messages=MSGS, metadata=metadata)


def mapping(df: pl.DataFrame) -> dict[str, str]:
    return dict(zip(df["example_id"], df["split"]))


@pytest.fixture(scope="module")
def grouped() -> pl.DataFrame:
    rows = [ex(f"sess{s}-{i}", session_id=f"sess-{s}") for s in range(300) for i in range(3)]
    rows += [ex(f"t{t}-{i}", thread_id=f"thread-{t}", session_id=f"other-{i}") for t in range(200) for i in range(3)]
    rows += [ex(f"solo-{i}") for i in range(200)]
    return examples_frame(rows)


def test_adds_group_key_and_split(grouped):
    out = assign_splits(grouped, SplitSettings())
    assert out.columns == [*grouped.columns, "group_key", "split"]
    assert out.height == grouped.height
    assert set(out["split"]) == {"train", "val", "test"}
    assert out["split"].null_count() == 0


def test_deterministic_and_independent_of_row_order(grouped):
    first = mapping(assign_splits(grouped, SplitSettings()))
    assert mapping(assign_splits(grouped, SplitSettings())) == first
    for seed in (1, 2, 3):
        shuffled = grouped.sample(fraction=1.0, shuffle=True, seed=seed)
        assert mapping(assign_splits(shuffled, SplitSettings())) == first
    # a subset gets the same assignment as in the whole corpus (no dependence on what else is present)
    subset = grouped.filter(pl.col("source_id").str.starts_with("sess1"))
    assert mapping(assign_splits(subset, SplitSettings())) == {k: first[k] for k in subset["example_id"]}


def test_one_group_lands_in_one_split(grouped):
    out = assign_splits(grouped, SplitSettings(train=0.4, val=0.3, test=0.3))
    per_group = out.group_by("group_key").agg(pl.col("split").n_unique().alias("n"), pl.len().alias("rows"))
    assert (per_group["n"] == 1).all()
    assert per_group.height == 300 + 200 + 200
    sessions = out.filter(pl.col("source_id").str.starts_with("sess")).with_columns(
        pl.col("metadata").str.json_path_match("$.session_id").alias("sid"))
    assert (sessions.group_by("sid").agg(pl.col("split").n_unique())["split"] == 1).all()
    # thread_id outranks session_id: each thread's examples share one split although their sessions differ
    threads = out.filter(pl.col("source_id").str.starts_with("t"))
    assert set(threads["group_key"].str.extract(r":group:(.*)$")) == {f"thread-{t}" for t in range(200)}
    # with these ratios groups really are spread over all three splits
    assert out.group_by("split").len().height == 3


def test_group_keys():
    rows = [ex("a", thread_id="T"), ex("b", session_id="S"), ex("c", conversation_id="C"), ex("d"),
            ex("e", source="public", thread_id="T")]
    out = assign_splits(examples_frame(rows), SplitSettings())
    keys = dict(zip(out["source_id"], out["group_key"]))
    assert keys["a"] == "conversations:group:T"
    assert keys["b"] == "conversations:group:S"
    assert keys["c"] == "conversations:group:C"
    assert keys["d"] == f"conversations:example:{rows[3]['example_id']}"
    assert keys["e"] == "public:group:T"  # the same thread id in another source is another group


@pytest.mark.parametrize(("train", "val", "test"), [(0.90, 0.05, 0.05), (0.70, 0.20, 0.10)])
def test_ratios_honoured_on_20k_groups(train, val, test):
    df = examples_frame([ex(f"g{i}", session_id=f"session-{i}") for i in range(20_000)])
    out = assign_splits(df, SplitSettings(train=train, val=val, test=test))
    share = {s: n / out.height for s, n in out.group_by("split").len().rows()}
    assert share["train"] == pytest.approx(train, abs=0.01)
    assert share["val"] == pytest.approx(val, abs=0.01)
    assert share["test"] == pytest.approx(test, abs=0.01)


def test_degenerate_ratios():
    df = examples_frame([ex(f"x{i}") for i in range(200)])
    assert set(assign_splits(df, SplitSettings(train=1.0, val=0.0, test=0.0))["split"]) == {"train"}
    assert set(assign_splits(df, SplitSettings(train=0.0, val=0.0, test=1.0))["split"]) == {"test"}


@pytest.mark.parametrize(
    "ratios",
    [(0.9, 0.05, 0.1), (0.8, 0.1, 0.05), (1.1, -0.05, -0.05), (0.5, 0.6, -0.1), (0.0, 0.0, 0.0)],
)
def test_invalid_ratios_raise(ratios):
    train, val, test = ratios
    with pytest.raises(ValueError, match="split ratios"):
        SplitSettings(train=train, val=val, test=test)


def test_changing_salt_changes_assignment():
    df = examples_frame([ex(f"g{i}", session_id=f"session-{i}") for i in range(2_000)])
    settings = dict(train=0.5, val=0.25, test=0.25)
    a = mapping(assign_splits(df, SplitSettings(**settings)))
    b = mapping(assign_splits(df, SplitSettings(**settings, salt="corpus-split-v2")))
    changed = sum(a[k] != b[k] for k in a)
    assert changed > 0.4 * len(a)  # independent draws differ ~62.5% of the time with these ratios
    assert mapping(assign_splits(df, SplitSettings(**settings, salt="corpus-split-v2"))) == b
