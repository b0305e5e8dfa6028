"""Staged scoring (filters.evaluate): each model runs only on the rows no earlier rule rejected, and the
decisions are exactly those of scoring every rule on every row."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from corpus_platform.curation import quality as q
from corpus_platform.curation.filters import MODEL_COLUMNS, FilterSettings, build_rules, evaluate, model_columns
from corpus_platform.schema import examples_frame, make_example

LONG = ("The harbour master checked the tide tables every morning before the fishing boats left, and the "
        "crews trusted her notes more than the radio forecast because she had been right for twenty years. ")
ANSWERS = {
    "kept": "Cats like to sleep in warm places, play with string and watch birds from the window sill.",
    "empty": "",  # empty_turn: a basic rule, before every model
    "safety": "Here is how to make a pipe bomb at home with simple parts from the hardware store.",
    "toxic": "You are a stupid idiot and I hate you, shut up, nobody wants your worthless opinion here.",
    "french": "Les chats aiment dormir au soleil et jouer avec une pelote de laine toute la journée.",
    "spam": "Join the crypto giveaway now, link in bio, follow for follow and send btc to win big today.",
    "repeat": "the cat sat on the mat " * 12 + LONG,  # a rep_top_n_gram failure: the last stage
    "long_kept": LONG + ("On quiet evenings she walked along the pier, counted the gulls on the railing and wrote "
                         "down which families had come back from the islands for the summer festival."),
}


def frame() -> pl.DataFrame:
    rows = [make_example(source=s, source_id=f"{name}-{s}", day=date(2026, 1, 1),
                         messages=[{"role": "user", "content": "Tell me something about your day, please."},
                                   {"role": "assistant", "content": answer}])
            for name, answer in ANSWERS.items() for s in ("public", "twitter")]
    dropped = make_example(source="public", source_id="dropped", day=date(2026, 1, 1),
                           messages=[{"role": "user", "content": "Hi there, how are you?"},
                                     {"role": "assistant", "content": ANSWERS["kept"]}])
    dropped["metadata"] = json.dumps({"drop_reason": "nsfw"})
    return examples_frame([*rows, dropped])


def first_failures_scoring_everything(df: pl.DataFrame, settings: FilterSettings) -> list[tuple]:
    """The reference: every model and every rule on every row, then the first failing rule in order."""
    rules = build_rules(settings)
    texts, tokens = q.text_columns()
    full = df.with_columns(texts).with_columns(tokens)
    for model in MODEL_COLUMNS:
        full = model_columns(full, model, settings, rules)
    full = full.with_columns([r.score().fill_null(0.0).cast(pl.Float64).alias(f"_score_{r.name}") for r in rules])
    passes = full.select([r.passes().alias(r.name) for r in rules]).to_dicts()
    thresholds = full.select([r.threshold_expr().alias(r.name) for r in rules]).to_dicts()
    out = []
    for i, (row, ok) in enumerate(zip(full.iter_rows(named=True), passes)):
        meta = json.loads(row["metadata"] or "{}")
        if "drop_reason" in meta:
            out.append((f"source:{meta['drop_reason']}", 1.0, 0.0))
            continue
        failed = next((r.name for r in rules if not ok[r.name]), None)
        out.append((failed, row[f"_score_{failed}"], thresholds[i][failed]) if failed else (None, None, None))
    return out


def test_staged_decisions_equal_scoring_every_rule_on_every_row():
    df, settings = frame(), FilterSettings()
    scored = evaluate(df, settings)
    got = list(scored.select("_rule", "_score", "_threshold").iter_rows())
    assert got == first_failures_scoring_everything(df, settings)
    rules = dict(zip(scored["source_id"], scored["_rule"]))
    assert (rules["kept-public"], rules["empty-public"], rules["toxic-public"], rules["french-public"]) == (
        None, "empty_turn", "toxicity", "language")
    assert rules["repeat-public"].startswith("rep_") and rules["dropped"] == "source:nsfw"


def test_models_run_only_on_rows_an_earlier_rule_did_not_reject():
    scored = evaluate(frame(), FilterSettings())
    by_case = {r["source_id"]: r for r in scored.iter_rows(named=True)}
    for sid in ("kept-public", "long_kept-twitter"):  # kept: every model column (metadata.curation reads them)
        assert by_case[sid]["_rule"] is None and by_case[sid]["_lang"] == "en"
        assert all(by_case[sid][c] is not None for cols in MODEL_COLUMNS.values() for c in cols)
    toxic = by_case["toxic-public"]  # rejected by toxicity: language and repetition never ran on it
    assert toxic["_toxicity"] > 0.8 and toxic["_lang"] is None and toxic["_rep_top_2_gram"] is None
    empty = by_case["empty-public"]  # rejected by a basic rule: no model ran
    assert empty["_toxicity"] is None and empty["_lang"] is None and empty["_score_spam_keywords"] is None
    assert by_case["dropped"]["_toxicity"] is None  # a connector's drop_reason decides before any rule
    assert by_case["french-public"]["_lang"] == "fr" and by_case["french-public"]["_rep_top_2_gram"] is None


def test_empty_frame_has_every_model_column():
    scored = evaluate(frame().clear(), FilterSettings())
    assert scored.height == 0
    assert {c for cols in MODEL_COLUMNS.values() for c in cols} <= set(scored.columns)
    assert scored.schema["_lang"] == pl.Utf8 and scored.schema["_rule"] == pl.Utf8
