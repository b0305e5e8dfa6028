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

An n-gram is compared by a 64-bit key (a rolling hash, see `_ngram_counts`), so two different n-grams
of one text count as one only on a hash collision (about 2^-64 per pair).
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
                     min_words: int = 50, tokens: pl.Series | None = None) -> pl.DataFrame:
    """One row per input text (same order) with every statistic of `stat_names(top, dup)`. `tokens`:
    each text's `str.extract_all(TOKEN)` where the caller has it already (the content rules do)."""
    frame = pl.DataFrame({"text": texts.fill_null("")})
    if tokens is not None:
        frame = frame.with_columns(tokens.alias("_w"))
        uniq = frame.unique("text", keep="first", maintain_order=True).with_row_index("_t")
    else:
        uniq = frame.select(pl.col("text").unique(maintain_order=True)).with_row_index("_t")
    uniq = uniq.with_columns(pl.col("text").str.len_chars().cast(pl.Float64).clip(lower_bound=1).alias("_len"))
    out = uniq.select("_t", "_len")
    for sep, name in ((r"\n{2,}", "para"), (r"\n+", "line")):
        stats = _element_dups(uniq, sep, name)
        out = out.join(stats, on="_t", how="left").with_columns(
            (pl.col(f"_{name}_chars") / pl.col("_len")).alias(f"dup_{name}_char_frac")).drop(f"_{name}_chars")
    ngrams = _ngram_counts(_words(uniq, min_words), top, dup)
    out = out.join(ngrams, on="_t", how="left").with_columns(
        [(pl.col(f"{kind}_{n}_gram").fill_null(0.0) / pl.col("_len")) for kind, ns in (("top", top), ("dup", dup)) for n, _ in ns])
    for n, limit in dup:
        over = out.filter(pl.col(f"dup_{n}_gram") > limit).select("_t", "_len").join(uniq.select("_t", "text"), on="_t")
        if over.height:  # the bound fails: datatrove's exact greedy count for these few texts
            exact = pl.DataFrame({"_t": over["_t"], "_x": [
                _greedy_dup_chars(ws, n) / ln for ws, ln in zip(over["text"].str.extract_all(TOKEN).to_list(), over["_len"])]},
                schema={"_t": pl.UInt32, "_x": pl.Float64})
            out = out.join(exact, on="_t", how="left").with_columns(
                pl.coalesce("_x", f"dup_{n}_gram").alias(f"dup_{n}_gram")).drop("_x")
    out = out.select("_t", pl.col(stat_names(top, dup)).fill_null(0.0).cast(pl.Float64))
    joined = frame.select("text").join(uniq.select("_t", "text"), on="text", how="left", maintain_order="left")
    return joined.join(out, on="_t", how="left", maintain_order="left").select(stat_names(top, dup))


def _words(uniq: pl.DataFrame, min_words: int) -> pl.DataFrame:
    """Tokens of the texts long enough for the n-gram rules, one row each in text order: `_p` (position
    in its text), `_nw` (tokens in its text), `_L` (characters) and `_h` (a 64-bit hash of the token)."""
    tokens = uniq.select("_t", (pl.col("_w") if "_w" in uniq.columns else pl.col("text").str.extract_all(TOKEN)).alias("w"))
    tokens = tokens.filter(pl.col("w").list.eval(pl.element().str.contains(r"[\p{L}\p{N}_]")).list.sum() >= min_words)
    tokens = tokens.with_columns(pl.col("w").list.len().cast(pl.Int64).alias("_nw"))
    start = (pl.col("_nw").cum_sum() - pl.col("_nw")).alias("_start")
    return (
        tokens.with_columns(start).explode("w").drop_nulls("w")
        .with_columns((pl.int_range(pl.len(), dtype=pl.Int64) - pl.col("_start")).alias("_p"),
                      pl.col("w").str.len_chars().cast(pl.Int64).alias("_L"), pl.col("w").hash().alias("_h"))
        .drop("w", "_start")
    )


_P = 0x100000001B3  # FNV prime: the multiplier of the rolling n-gram hash
_SALT = 0x9E3779B97F4A7C15


def _ngram_counts(words: pl.DataFrame, top: tuple, dup: tuple) -> pl.DataFrame:
    """Per text: `top_<n>_gram` and `dup_<n>_gram` in characters (not yet divided by the text length).

    An n-gram is a 64-bit key: a polynomial hash (mod 2^64) of its token hashes whose first term is
    xored with a per-text salt, so equal keys mean the same n-gram in the same text; key n+1 is one
    multiply-add on key n. A repeated (n+1)-gram starts with a repeated n-gram, so each n only looks
    at the starts whose n-1-gram occurs at least twice: a few percent of the tokens past n = 3."""
    ns = sorted({n for n, _ in (*top, *dup)})
    if not ns:
        return pl.DataFrame(schema={"_t": pl.UInt32})
    if ns[0] < 2:
        raise ValueError(f"n-gram sizes start at 2, got {ns}")
    k = pl.col("_t").cast(pl.UInt64) * pl.lit(_SALT, dtype=pl.UInt64) ^ pl.col("_h")
    full = words.with_row_index("_r").with_columns(k.alias("k1"), pl.col("_L").cum_sum().alias("_c"))
    for n in range(2, ns[-1] + 1):
        full = full.with_columns((pl.col(f"k{n - 1}") * pl.lit(_P, dtype=pl.UInt64) + pl.col("_h").shift(-(n - 1))).alias(f"k{n}"))
    top_n = [n for n, _ in top]
    full = full.with_columns([(pl.col("_c").shift(-(n - 1)) - pl.col("_c") + pl.col("_L") + (n - 1)).alias(f"_glen{n}")
                              for n in top_n])  # an n-gram's characters, joined by spaces
    per_text, starts = [], {}
    cur = full
    for n in range(2, ns[-1] + 1):
        cur = _repeated(cur.filter(pl.col("_p") <= pl.col("_nw") - n), f"k{n}")  # valid: the n-gram ends inside its text
        cur = cur.with_columns(pl.len().over(f"k{n}").alias("_k"))
        if n in top_n:  # rows are in text order: the first with its text's top count starts the earliest n-gram
            best = cur.filter(pl.col("_k") == pl.col("_k").max().over("_t")).unique("_t", keep="first", maintain_order=True)
            per_text.append(best.select("_t", (pl.col("_k") * pl.col(f"_glen{n}")).cast(pl.Float64).alias(f"top_{n}_gram")))
        if n in dict(dup):
            starts[n] = cur.filter(~pl.col(f"k{n}").is_first_distinct())["_r"]
    if dup:  # a token is covered when a repeated start lies in [j-n+1, j]
        flags = {n: pl.zeros(full.height, pl.Int32, eager=True).scatter(r, 1) if len(r) else pl.zeros(full.height, pl.Int32, eager=True)
                 for n, r in starts.items()}
        sums = full.select("_t", "_L", *[v.cum_sum().alias(f"_s{n}") for n, v in flags.items()])
        covered = sums.select("_t", *[(pl.col("_L") * ((pl.col(f"_s{n}") - pl.col(f"_s{n}").shift(n, fill_value=0)) > 0))
                                      .alias(f"dup_{n}_gram") for n in starts])
        per_text.append(covered.group_by("_t").agg(pl.exclude("_t").sum().cast(pl.Float64)))
    out = per_text[0]
    for frame in per_text[1:]:
        out = out.join(frame, on="_t", how="full", coalesce=True)
    return out


def _repeated(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The rows of `frame` whose `key` occurs at least twice, in frame order (a sort finds them: cheaper
    than hashing when, as here, almost every key is unique)."""
    k = pl.col(key)
    order = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), k).sort(key)
    return frame[order.filter((k == k.shift(1)) | (k == k.shift(-1)))["_i"].sort()]


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
