"""Text normalization applied to every turn before filtering and hashing.

NFKC folds compatibility forms (full-width letters, ligatures, non-breaking spaces) so that two
examples that read the same hash the same. Whitespace is collapsed but line breaks are kept, since
they carry structure (lists, code) that a fine-tuned model should learn.

Social text gets two more steps, per source (`SocialSteps`; on for twitter, reddit, youtube and
conversations, off for public and synthetic, whose code must keep its "####" and "aaa"):

- elongation: a run of 3 or more of the same lowercase ASCII letter collapses to one letter
  ("sooo" -> "so", "yesss" -> "yes", "hmmm" -> "hm"). Pairs survive ("cool", "bookkeeper"); uppercase
  runs survive because they are acronyms and numerals ("III", "WWW", "AAA battery"); URLs are skipped.
  Known loss: a word whose real spelling has a double letter is shortened too ("coool" -> "col").
- hashtags: "#MachineLearning" -> "Machine Learning", "#machine_learning" -> "machine learning",
  "#NASAMission" -> "NASA Mission", "#AI" -> "AI". A hashtag is "#" plus a letter at the start of a
  word ("C#", "page#Anchor", "&#39;", "# Heading" and "#123" are left alone).

Both skip text between backticks (inline code and ``` fences): the text is split on "`" and only the
even segments (outside code) are rewritten, so it stays vectorized. Emoji are never touched.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import polars as pl

SOCIAL_SOURCES = ("twitter", "reddit", "youtube", "conversations")

_URL_SKIP = r"(https?://\S+|www\.\S+)"
# Rust regex has no backreferences: one alternative per letter, each capturing its letter once.
_ELONGATED = _URL_SKIP + "|" + "|".join(f"({c}){c}{{2,}}" for c in string.ascii_lowercase)
_MARK = "\x01"  # control characters are removed before these steps run, so the marker is free
_HASHTAG = r"(^|[^\p{L}\p{N}_&#/@])#(\p{L}[\p{L}\p{N}_]*)"
# One word boundary inside a marked hashtag: lower/digit -> Upper, UPPER -> Upper+lower, or "_".
_HASHTAG_SPLIT = _MARK + r"([\p{L}\p{N}]*?)(?:([\p{Ll}\p{N}])(\p{Lu})|(\p{Lu})(\p{Lu}\p{Ll})|_+([\p{L}\p{N}]))"
_MAX_HASHTAG_WORDS = 12


@dataclass(frozen=True)
class SocialSteps:
    elongation: bool = False
    hashtags: bool = False


def social_steps(source: str, sources: tuple[str, ...] | list[str] = SOCIAL_SOURCES) -> SocialSteps:
    on = source in sources
    return SocialSteps(elongation=on, hashtags=on)


def normalize_text(expr: pl.Expr) -> pl.Expr:
    return _clean(expr.str.normalize("NFKC"))


def _clean(expr: pl.Expr) -> pl.Expr:
    """normalize_text's steps after NFKC."""
    return (
        expr.str.replace_all("\r\n?", "\n")
        .str.replace_all("[\u200b\ufeff]", "")  # zero-width space / BOM (ZWJ kept: emoji use it)
        .str.replace_all(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "")  # control characters (tab and newline kept)
        .str.replace_all(r"[^\S\n]{2,}|[^\S\n ]", " ")  # same as [^\S\n]+ -> " ", ~4x faster: lone spaces untouched
        .str.replace_all(r" ?\n ?", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def collapse_elongation(expr: pl.Expr) -> pl.Expr:
    """Runs of 3+ of one lowercase ASCII letter -> that letter once; URLs are matched first and kept."""
    groups = "".join(f"${{{i}}}" for i in range(1, len(string.ascii_lowercase) + 2))
    return expr.str.replace_all(_ELONGATED, groups)


def split_hashtags(expr: pl.Expr) -> pl.Expr:
    """'#MachineLearning' -> 'Machine Learning': mark hashtags, split one boundary per pass, unmark."""
    out = expr.str.replace_all(_HASHTAG, "${1}" + _MARK + "${2}")
    # Each pass splits the first remaining boundary of every hashtag (the split-off word keeps the
    # mark); a fixed number of passes keeps this a plain expression, and longer tags keep their tail.
    for _ in range(_MAX_HASHTAG_WORDS - 1):
        out = out.str.replace_all(_HASHTAG_SPLIT, _MARK + "${1}${2}${4} " + _MARK + "${3}${5}${6}")
    return out.str.replace_all(_MARK, "", literal=True)


def outside_code(expr: pl.Expr, step) -> pl.Expr:
    """Apply `step` to the text outside backtick spans only (even segments of a split on '`')."""
    return expr.str.split("`").list.eval(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(step(pl.element())).otherwise(pl.element())
    ).list.join("`")


def social_text(expr: pl.Expr, steps: SocialSteps) -> pl.Expr:
    if not (steps.elongation or steps.hashtags):
        return expr

    def step(e: pl.Expr) -> pl.Expr:
        e = split_hashtags(e) if steps.hashtags else e
        return collapse_elongation(e) if steps.elongation else e

    return outside_code(expr, step)


_NON_ASCII = r"[^\x00-\x7F]"  # ASCII text is already NFKC
_SOCIAL_CANDIDATE = "#|" + "|".join(c * 3 for c in string.ascii_lowercase)  # a hashtag or an elongation


def normalize_texts(texts: pl.Series, steps: SocialSteps = SocialSteps()) -> pl.Series:
    """`social_text(normalize_text(...))` on a Series, the same output: NFKC runs only on the non-ASCII
    texts, and the social steps only on the texts with a '#' or a tripled lowercase letter (they leave
    the others unchanged)."""
    texts = nfkc(texts)
    texts = texts.to_frame("t").select(_clean(pl.col("t")))["t"]
    if steps.elongation or steps.hashtags:
        texts = _where(texts, _SOCIAL_CANDIDATE, lambda t: t.to_frame("t").select(social_text(pl.col("t"), steps))["t"])
    return texts


def nfkc(texts: pl.Series) -> pl.Series:
    """NFKC of every text, run only on the non-ASCII ones (ASCII text is already NFKC)."""
    return _where(texts, _NON_ASCII, lambda t: t.str.normalize("NFKC"))


def _where(texts: pl.Series, pattern: str, step) -> pl.Series:
    """`step` on the texts `pattern` matches, the others (and nulls) as they are."""
    hit = texts.str.contains(pattern).fill_null(False)
    if not hit.any():
        return texts
    return texts.clone().scatter(hit.arg_true(), step(texts.filter(hit)))


def normalize_messages(df: pl.DataFrame, steps: SocialSteps = SocialSteps()) -> pl.DataFrame:
    """Normalize the content of every turn; roles and turn order are untouched. The turns of the whole
    frame are normalized as one Series (`normalize_texts`) and regrouped in order."""
    if df.height == 0:
        return df
    turns = (
        df.select(pl.int_range(pl.len()).alias("_row"), pl.col("messages"), pl.col("messages").list.len().alias("_n"))
        .explode("messages").filter(pl.col("_n") > 0)  # empty and null lists explode to one placeholder row
        .select("_row", pl.col("messages").struct.field("role"), pl.col("messages").struct.field("content"))
    )
    turns = turns.with_columns(normalize_texts(turns["content"], steps).alias("content"))
    lists = turns.group_by("_row", maintain_order=True).agg(pl.struct("role", "content").alias("_m"))
    out = df.with_columns(pl.int_range(pl.len()).alias("_row")).join(lists, on="_row", how="left", maintain_order="left")
    return out.with_columns(pl.coalesce("_m", pl.col("messages").list.head(0)).alias("messages")).select(df.columns)


def role_texts(role: str, col: str = "messages") -> pl.Expr:
    """The contents of one role's turns as a list of strings."""
    return pl.col(col).list.eval(
        pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")
    )


def conversation_text(col: str = "messages") -> pl.Expr:
    """The whole conversation as one string, roles included: what exact dedup hashes.

    Role and content are joined by the unit separator and turns by the record separator (control
    characters that normalization removes from content), so a turn whose
    text contains "\nassistant: ..." cannot hash like two turns.
    """
    return pl.col(col).list.eval(
        pl.element().struct.field("role") + pl.lit("\x1f") + pl.element().struct.field("content")
    ).list.join("\x1e")
