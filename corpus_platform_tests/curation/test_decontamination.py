"""Decontamination: long shared n-grams with evaluation files are found, short coincidences are not."""

import json
from datetime import date

import polars as pl
import pytest

from corpus_platform.curation.decontamination import EvalIndex, find_contaminated, load_eval_texts, ngram_hashes
from corpus_platform.curation.splits import SplitSettings, assign_splits

DAY = date(2026, 1, 1)
EVAL_ANSWER = ("the mitochondria is the powerhouse of the cell because it converts nutrients into the energy "
               "currency that every other organelle depends on")


def examples(answers):
    return pl.DataFrame({
        "example_id": [f"e{i}" for i in range(len(answers))], "source": "public", "date": [DAY] * len(answers),
        "messages": [[{"role": "user", "content": "Explain."}, {"role": "assistant", "content": a}] for a in answers],
    })


@pytest.fixture
def index(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"question": "What is the mitochondria?", "answer": EVAL_ANSWER}) + "\n")
    (tmp_path / "short.txt").write_text("Paris\n")
    return EvalIndex.build(load_eval_texts([tmp_path / "eval.jsonl", tmp_path / "short.txt"]), 13)


def test_a_13_word_span_is_caught_and_names_the_record(index):
    span = " ".join(EVAL_ANSWER.split()[3:16])  # exactly 13 words
    df = examples([f"As they say, {span}, and more.", "the mitochondria is the powerhouse of the cell, as everyone knows.",
                   "A completely unrelated answer about trains and timetables in the north."])
    hit = find_contaminated(df, index)
    assert hit["example_id"].to_list() == ["e0"] and hit["ref"][0] == "eval.jsonl:1" and hit["shared"][0] == 1


def test_case_and_punctuation_do_not_hide_an_overlap(index):
    df = examples([EVAL_ANSWER.upper().replace(" ", " , ")])
    assert find_contaminated(df, index).height == 1


def test_an_eval_text_shorter_than_n_words_cannot_flag_anything(index):
    assert index.too_short == 2  # "Paris" and the 4-word question
    assert find_contaminated(examples(["Paris", "Paris is the capital of France and its largest city by far."]), index).height == 0


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="decontamination file not found"):
        load_eval_texts([tmp_path / "nope.jsonl"])


def test_ngram_hashes_offsets_and_counts():
    h, off = ngram_hashes(pl.Series(["one two three", "", " ".join(f"w{i}" for i in range(20))]), 13)
    assert off.tolist() == [0, 1, 1, 9] and h.size == 9


def test_related_pairs_put_both_examples_on_one_side():
    n = 200
    df = pl.DataFrame({"example_id": [f"x{i:03d}" for i in range(n)], "source": "public", "date": [DAY] * n,
                       "metadata": ["{}"] * n, "quality_score": [5.0] * n})
    links = pl.DataFrame({"id_a": [f"x{i:03d}" for i in range(0, n, 2)], "date_a": [DAY] * (n // 2),
                          "id_b": [f"x{i:03d}" for i in range(1, n, 2)], "date_b": [DAY] * (n // 2)})
    split = assign_splits(df, SplitSettings(train=0.5, val=0.25, test=0.25), links)
    pairs = split.with_columns((pl.int_range(pl.len()) // 2).alias("pair")).group_by("pair").agg(pl.col("split").n_unique())
    assert (pairs["split"] == 1).all()
    assert split["split"].n_unique() == 3  # and the pairs still spread over the splits
