"""alt-profanity-check's predict_proba in Polars/NumPy, bit-for-bit.

The model is a pickled sklearn TfidfVectorizer (word unigrams, `(?u)\\b\\w\\w+\\b`, lowercase, idf, l2)
feeding a CalibratedClassifierCV of 5 LinearSVCs with sigmoid calibrators. sklearn tokenizes each text
in Python (`_count_vocab`), the stage's largest single cost; here the tokens come from one Polars
`extract_all` over the batch and the arithmetic replays sklearn's, in its order, so the floats are equal:
- tokens are maximal runs of 2+ Python word characters (`\\w` of `re` = `str.isalnum()` or `_`, which
  is not Rust's `\\w`; the class is built from the running Python, so it is exact for its Unicode);
- lowercasing is Polars' (Rust's), except for the few texts holding a character whose lowercase differs
  from Python's `str.lower()` (or a capital sigma, whose final form depends on context): those are
  lowered by Python;
- per text the counts are sorted by column (CSR sorted indices), scaled by idf, and the squared sum,
  the l2 division and each estimator's dot product are sequential sums in that order (`np.bincount`
  adds in array order, as sklearn's and scipy's loops do), then `expit(-(a*T + b))` per estimator,
  summed from zero in estimator order and divided by their count (CalibratedClassifierCV).
`sklearn_proba` keeps the original path as the reference (tests) and as the fallback for a pickled model
of another shape.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


@lru_cache(maxsize=1)
def profanity_sklearn():
    """(vectorizer, calibrated model) of alt-profanity-check, loaded once."""
    with warnings.catch_warnings():  # the pickled sklearn model warns about the sklearn version
        warnings.simplefilter("ignore")
        from profanity_check import profanity_check

    return profanity_check.vectorizer, profanity_check.model


def sklearn_proba(texts: list[str]) -> np.ndarray:
    """The reference: sklearn's own transform + predict_proba (P(toxic) per text)."""
    vectorizer, model = profanity_sklearn()
    return model.predict_proba(vectorizer.transform(texts))[:, 1]


def _char_class(chars: list[str]) -> str:
    """A Rust regex character class of exactly these code points, as ranges."""
    codes, ranges = sorted(ord(c) for c in chars), []
    for c in codes:
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


@lru_cache(maxsize=1)
def _all_chars() -> str:
    """Every code point but the surrogates, in order, as one string."""
    codes = np.arange(sys.maxunicode + 1, dtype="<u4")
    return codes[(codes < 0xD800) | (codes > 0xDFFF)].tobytes().decode("utf-32-le")


def _python_word_class() -> str:
    """Python's `re` `\\w` (str patterns, Unicode) as an explicit Rust class."""
    return _char_class(re.findall(r"\w", _all_chars()))


@lru_cache(maxsize=1)
def _lower_table() -> pl.DataFrame:
    """Every code point with its Python `str.lower()` and its Polars (Rust) lowercase."""
    chars = pl.Series(list(_all_chars()), dtype=pl.Utf8)
    return pl.DataFrame({"c": chars, "python": [c.lower() for c in _all_chars()], "polars": chars.str.to_lowercase()})


def _lowercase_mismatch_class() -> str:
    """Characters whose Polars lowercase is not Python's `str.lower()`, plus the capital sigma."""
    table = _lower_table()
    return _char_class(table.filter(pl.col("python") != pl.col("polars"))["c"].to_list() + ["\u03a3"])


def _python_lowers_class() -> str:
    """Characters that Python's `str.lower()` changes."""
    table = _lower_table()
    return _char_class(table.filter(pl.col("python") != pl.col("c"))["c"].to_list())


def python_lower(texts: pl.Series) -> pl.Series:
    """`str.lower()` of every text: Polars for all but the texts holding a character it lowers differently."""
    texts = texts.cast(pl.Utf8).fill_null("")
    lowered = texts.str.to_lowercase()
    odd = texts.str.contains(lowercase_mismatch_class()).fill_null(False)
    if odd.any():
        idx = odd.arg_true()
        lowered = lowered.scatter(idx, pl.Series([t.lower() for t in texts.gather(idx).to_list()], dtype=pl.Utf8))
    return lowered


@dataclass(frozen=True)
class LinearTfidf:
    """The numbers of the pickled model that predict_proba reads."""

    vocab: pl.DataFrame  # term -> col
    idf: np.ndarray  # (n_features,)
    coef: np.ndarray  # (n_estimators, n_features)
    intercept: np.ndarray  # (n_estimators,)
    a: np.ndarray  # sigmoid calibrators, (n_estimators,)
    b: np.ndarray


def _supported(vectorizer, model) -> bool:
    """Whether the pickled pair is the shape this module replays (otherwise sklearn runs it)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer

    v = vectorizer
    if not (type(v) is TfidfVectorizer and v.analyzer == "word" and v.lowercase and v.ngram_range == (1, 1)
            and v.token_pattern == SKLEARN_TOKEN_PATTERN and v.tokenizer is None and v.preprocessor is None
            and v.strip_accents is None and v.norm == "l2" and v.use_idf and not v.sublinear_tf
            and not v.binary and v.dtype is np.float64 and v.input == "content"):
        return False
    if v.stop_words is not None and set(v.get_stop_words() or ()) & set(v.vocabulary_):
        return False  # a stop word in the vocabulary would need removing before the lookup
    if not (type(model) is CalibratedClassifierCV and model.method == "sigmoid" and len(model.classes_) == 2):
        return False
    return all(cc.estimator.coef_.shape == (1, len(v.vocabulary_)) and len(cc.calibrators) == 1
               and hasattr(cc.estimator, "decision_function") and list(cc.estimator.classes_) == list(cc.classes)
               for cc in model.calibrated_classifiers_)


def _linear_tfidf() -> LinearTfidf | None:
    vectorizer, model = profanity_sklearn()
    if not _supported(vectorizer, model):
        return None
    terms = list(vectorizer.vocabulary_)
    ccs = model.calibrated_classifiers_
    return LinearTfidf(
        vocab=pl.DataFrame({"t": terms, "col": [vectorizer.vocabulary_[t] for t in terms]},
                           schema={"t": pl.Utf8, "col": pl.Int64}),
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        coef=np.stack([np.asarray(cc.estimator.coef_[0], dtype=np.float64) for cc in ccs]),
        intercept=np.array([float(np.ravel(cc.estimator.intercept_)[0]) for cc in ccs]),
        a=np.array([float(cc.calibrators[0].a_) for cc in ccs]),
        b=np.array([float(cc.calibrators[0].b_) for cc in ccs]),
    )


def profanity_proba(texts: pl.Series) -> np.ndarray:
    """P(toxic) per text, equal to `sklearn_proba(texts.to_list())`."""
    model = linear_tfidf()
    if model is None:
        return sklearn_proba(texts.cast(pl.Utf8).fill_null("").to_list())
    from scipy.special import expit

    n = texts.len()
    tokens = pl.DataFrame({"seg": np.arange(n, dtype=np.int64), "t": python_lower(texts)}).select(
        "seg", pl.col("t").str.extract_all(python_word_class() + "{2,}")).explode("t")
    width = len(model.idf)  # one sorted int key per (text, column): a CSR matrix's sorted order
    runs = (tokens.join(model.vocab, on="t", how="inner").select(pl.col("seg") * width + pl.col("col"))
            .to_series().sort().rle().struct.unnest())
    key = runs["value"].to_numpy()
    seg, col = key // width, key % width
    x = runs["len"].to_numpy().astype(np.float64) * model.idf[col]
    norm = np.sqrt(np.bincount(seg, weights=x * x, minlength=n))
    x = np.where(norm[seg] != 0.0, x / np.where(norm[seg] != 0.0, norm[seg], 1.0), x)
    mean = np.zeros(n)
    for k in range(len(model.intercept)):
        decision = np.bincount(seg, weights=x * model.coef[k, col], minlength=n) + model.intercept[k]
        p = expit(-(model.a[k] * decision + model.b[k]))
        p[(1.0 < p) & (p <= 1.0 + 1e-5)] = 1.0
        mean += p
    return mean / len(model.intercept)


# --- a cache of the derived numbers: what a fresh process would otherwise rebuild ----------------------
# Building the character classes walks every code point (~0.75 s) and reading the pickled model imports
# sklearn (~1.1 s): paid by every filter step, which runs in its own process. They depend only on the
# model files, Python's Unicode tables and Polars' lowercasing, so they are kept on disk keyed by those.
CACHE_VERSION = 1


def cache_dir() -> Path:
    base = os.environ.get("CORPUS_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME")
                                                               or os.path.expanduser("~/.cache"), "corpus_platform")
    return Path(base)


def _fingerprint() -> str:
    import importlib.util
    import unicodedata

    digest = hashlib.sha256(f"{CACHE_VERSION}|{sys.version}|{unicodedata.unidata_version}|{pl.__version__}".encode())
    spec = importlib.util.find_spec("profanity_check")  # the package, without importing it (that loads sklearn)
    data = Path(spec.origin).parent / "data" if spec and spec.origin else None
    for name in ("vectorizer.joblib", "model.joblib"):
        digest.update((data / name).read_bytes() if data and (data / name).exists() else b"-")
    return digest.hexdigest()[:24]


@lru_cache(maxsize=1)
def _bundle() -> dict:
    path = cache_dir() / f"profanity-{_fingerprint()}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        pass
    model = _linear_tfidf()
    bundle = {"word": np.array(_python_word_class()), "mismatch": np.array(_lowercase_mismatch_class()),
              "lowers": np.array(_python_lowers_class()), "supported": np.array(model is not None)}
    if model is not None:
        bundle.update(terms=np.array(model.vocab["t"].to_list()), cols=model.vocab["col"].to_numpy(), idf=model.idf,
                      coef=model.coef, intercept=model.intercept, a=model.a, b=model.b)
    try:  # atomic: a concurrent step reads the old file or the whole new one
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **bundle)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: rebuilt per process, as before
    return bundle


def python_word_class() -> str:
    return str(_bundle()["word"])


def lowercase_mismatch_class() -> str:
    return str(_bundle()["mismatch"])


def python_lowers_class() -> str:
    return str(_bundle()["lowers"])


@lru_cache(maxsize=1)
def linear_tfidf() -> LinearTfidf | None:
    b = _bundle()
    if not bool(b["supported"]):
        return None
    return LinearTfidf(vocab=pl.DataFrame({"t": b["terms"].tolist(), "col": b["cols"]},
                                          schema={"t": pl.Utf8, "col": pl.Int64}),
                       idf=b["idf"], coef=b["coef"], intercept=b["intercept"], a=b["a"], b=b["b"])
