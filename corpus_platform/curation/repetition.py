"""Gopher repetition statistics (Rae et al. 2021, table A1), vectorized over exploded paragraphs,
lines and words of the unique texts of a frame.

The thresholds are datatrove's `GopherRepetitionFilter` defaults (datatrove 0.10.1,
`datatrove/pipeline/filters/gopher_repetition_filter.py`): dup_para_frac 0.3, dup_para_char_frac 0.2,
dup_line_frac 0.3, dup_line_char_frac 0.2, top_n_grams (2, 0.2), (3, 0.18), (4, 0.16) and dup_n_grams
(5, 0.15) ... (10, 0.10). Each statistic matches datatrove's except where noted:

- words are a regex tokenization (runs of letters/digits/apostrophes, and runs of punctuation) in
  place of NLTK's word_tokenize;
- top n-gram: datatrove scores the most frequent n-gram even when it occurs once, which on a
  ten-word chat reply is 20 % of the text with no repetition at all; here an n-gram counts only
  when it occurs at least twice (on web documents, datatrove's domain, the two agree);
- n-gram statistics are 0 for texts of fewer than `min_words` words (50 by default: in Gopher and
  datatrove only documents of 50+ words reach the repetition filter, and in a 20-word reply
  "Thailand is ... Thailand is" is a 33 % top 2-gram without being repetitive);
- duplicated n-grams are first bounded in Polars: the characters of every word covered by a repeated
  n-gram (any occurrence after the first) include every character datatrove's greedy left-to-right
  scan counts. Only texts whose bound exceeds the threshold are re-scored with datatrove's exact
  scan (`_greedy_dup_chars`, a Python loop over those few unique texts), so the recorded score is
  datatrove's.
"""

from __future__ import annotations

import polars as pl

TOKEN = r"[\p{L}\p{N}_]+(?:['’][\p{L}\p{N}_]+)*|[^\p{L}\p{N}_\s]+"
TOP_N_GRAMS: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_N_GRAMS: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
ELEMENT_STATS = ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")


def stat_names(top: tuple = TOP_N_GRAMS, dup: tuple = DUP_N_GRAMS) -> list[str]:
    return [*ELEMENT_STATS, *[f"top_{n}_gram" for n, _ in top], *[f"dup_{n}_gram" for n, _ in dup]]


def _element_dups(texts: pl.DataFrame, sep_regex: str, name: str) -> pl.DataFrame:
    """Per text: share of elements (paragraphs or lines) that repeat an earlier one, and their chars."""
    parts = (
        texts.select("_t", pl.col("text").str.strip_chars().str.replace_all(sep_regex, "\x04").str.split("\x04").alias("e"))
        .explode("e")
        .with_columns((~pl.col("e").is_first_distinct().over("_t")).alias("dup"))
        .group_by("_t")
        .agg(pl.len().alias("n"), pl.col("dup").sum().alias("d"),
             pl.col("e").str.len_chars().filter(pl.col("dup")).sum().alias("c"))
    )
    return parts.select("_t", (pl.col("d") / pl.col("n")).alias(f"dup_{name}_frac"),
                        pl.col("c").alias(f"_{name}_chars"))


def repetition_stats(texts: pl.Series, top: tuple = TOP_N_GRAMS, dup: tuple = DUP_N_GRAMS,
                     min_words: int = 50) -> pl.DataFrame:
    """One row per input text (same order) with every statistic of `stat_names(top, dup)`."""
    frame = pl.DataFrame({"text": texts.fill_null("")})
    uniq = frame.select(pl.col("text").unique(maintain_order=True)).with_row_index("_t")
    uniq = uniq.with_columns(pl.col("text").str.len_chars().cast(pl.Float64).clip(lower_bound=1).alias("_len"))
    out = uniq.select("_t", "_len")
    for sep, name in ((r"\n{2,}", "para"), (r"\n+", "line")):
        stats = _element_dups(uniq, sep, name)
        out = out.join(stats, on="_t", how="left").with_columns(
            (pl.col(f"_{name}_chars") / pl.col("_len")).alias(f"dup_{name}_char_frac")).drop(f"_{name}_chars")
    # Words of the texts long enough for the n-gram rules, in text order: a global shift(-k) reads
    # the k-th next word, and a start is valid only when its n-gram ends inside its own text.
    words = (
        uniq.with_columns(pl.col("text").str.extract_all(TOKEN).alias("w"))
        .filter(pl.col("w").list.eval(pl.element().str.contains(r"[\p{L}\p{N}_]")).list.sum() >= min_words)
        .select("_t", "w").explode("w").drop_nulls("w")
        .with_columns(pl.int_range(pl.len()).over("_t").cast(pl.Int64).alias("_p"),
                      pl.len().over("_t").cast(pl.Int64).alias("_nw"),
                      pl.col("w").str.len_chars().cast(pl.Int64).alias("_L"), pl.col("w").hash().alias("_h"))
    )
    for n, _ in top:
        best = (
            _with_ngrams(words, n).filter(pl.col("_valid"))
            .group_by("_t", "g").agg(pl.len().alias("k"), pl.col("_glen").first(), pl.col("_p").min())
            .filter(pl.col("k") >= 2)
            .sort("_t", "k", "_p", descending=[False, True, False])
            .group_by("_t", maintain_order=True).first()
            .select("_t", (pl.col("k") * pl.col("_glen")).alias(f"_top{n}"))
        )
        out = out.join(best, on="_t", how="left").with_columns(
            (pl.col(f"_top{n}").fill_null(0) / pl.col("_len")).alias(f"top_{n}_gram")).drop(f"_top{n}")
    for n, limit in dup:
        dup_start = pl.col("_valid") & ~pl.struct("_t", "g").is_first_distinct()
        covered = _with_ngrams(words, n).with_columns(dup_start.cast(pl.Int8).alias("_d")).with_columns(
            pl.col("_d").rolling_max(window_size=n, min_samples=1).alias("_cov"))  # a start in [j-n+1, j]
        chars = covered.group_by("_t").agg((pl.col("_L") * pl.col("_cov")).sum().alias("_c"))
        out = out.join(chars, on="_t", how="left").with_columns(
            (pl.col("_c").fill_null(0) / pl.col("_len")).alias(f"dup_{n}_gram")).drop("_c")
        over = out.filter(pl.col(f"dup_{n}_gram") > limit).select("_t", "_len").join(uniq.select("_t", "text"), on="_t")
        if over.height:  # the bound fails: datatrove's exact greedy count for these few texts
            exact = pl.DataFrame({"_t": over["_t"], "_x": [
                _greedy_dup_chars(ws, n) / ln for ws, ln in zip(over["text"].str.extract_all(TOKEN).to_list(), over["_len"])]},
                schema={"_t": pl.UInt32, "_x": pl.Float64})
            out = out.join(exact, on="_t", how="left").with_columns(
                pl.coalesce("_x", f"dup_{n}_gram").alias(f"dup_{n}_gram")).drop("_x")
    out = out.with_columns(pl.exclude("_t", "_len").fill_null(0.0).cast(pl.Float64))
    joined = frame.join(uniq.select("_t", "text"), on="text", how="left", maintain_order="left")
    return joined.join(out, on="_t", how="left", maintain_order="left").select(stat_names(top, dup))


def _with_ngrams(words: pl.DataFrame, n: int) -> pl.DataFrame:
    """Each word row with the n-gram starting there: `g` (a 64-bit hash of its n word hashes),
    `_glen` (its length joined by spaces) and `_valid` (it ends inside its own text)."""
    valid = pl.col("_p") <= pl.col("_nw") - n
    gram = pl.struct([pl.col("_h").shift(-k).alias(f"h{k}") for k in range(n)]).hash()
    glen = pl.sum_horizontal([pl.col("_L").shift(-k) for k in range(n)]) + (n - 1)
    return words.with_columns(gram.alias("g"), glen.alias("_glen"), valid.alias("_valid"))


def _greedy_dup_chars(words: list[str], n: int) -> int:
    """datatrove's `find_all_duplicate`: scan left to right, skip n words past each repeat."""
    seen, chars, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars
