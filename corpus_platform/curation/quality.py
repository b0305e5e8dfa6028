"""Content-quality scores of the filter stage, as Polars expressions over the conversation.

Which text each rule reads, and why:
- the assistant text (the training target) for safety, toxicity, diversity, generic phrases and
  the Gopher rules: a toxic *prompt* answered well (a refusal) is still good training data;
- the prompt and the reply for language ID, which needs the context (see classifiers.py);
- every turn for spam keywords, URLs and media placeholders: those mark scraped junk whichever side
  carries them.

Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A) with datatrove's
`GopherQualityFilter` defaults (datatrove 0.10.1, `datatrove/pipeline/filters/gopher_quality_filter.py`):
min_doc_words 50, max_doc_words 100000, min_avg_word_length 3, max_avg_word_length 10,
max_symbol_word_ratio 0.1 (for "#" and for ellipses), max_bullet_lines_ratio 0.9,
max_ellipsis_lines_ratio 0.3, max_non_alpha_words_ratio 0.8 (a *minimum* share of words holding a
letter, despite its name), min_stop_words 2 of datatrove's ("the", "be", "to", "of", "and", "that",
"have", "with"). Tokens are `repetition.TOKEN` (words and punctuation runs, like NLTK's), and stop
words are matched case-insensitively (datatrove matches lowercase tokens only).
"""

from __future__ import annotations

import polars as pl

from corpus_platform.curation.normalize import role_texts
from corpus_platform.curation.pii import URL
from corpus_platform.curation.repetition import TOKEN

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# Function words that carry no content, for the diversity rule: articles, pronouns, auxiliaries,
# prepositions, conjunctions and fillers (a short subset of the usual English lists).
STOP_WORDS = tuple("""
a an the and or but if then else so because as of at by for from in into on onto to up down out over
under with without about above below between through during before after again further than too very
i me my mine myself we us our ours you your yours he him his she her hers it its they them their theirs
this that these those there here what which who whom whose when where why how all any both each few
more most other some such no nor not only own same can will just should would could may might must
shall do does did doing done be is am are was were been being have has had having get got let lets
i'm i've i'd i'll you're you've it's that's there's don't doesn't didn't can't won't isn't aren't
oh ok okay yeah yes well also really just like
""".split())

GENERIC_PHRASES = (
    "as an ai language model", "as an ai model", "as an ai assistant", "as a language model",
    "i'm just an ai", "i am just an ai", "i hope this helps", "hope this helps", "great question",
    "good question", "i'm sorry, but i cannot", "i'm sorry, but i can't", "feel free to ask",
    "let me know if you have any other questions", "is there anything else i can help",
)

# Phrases that, in an *assistant* reply, signal instructions we must never train on. A keyword list
# is a floor, not a classifier: it also drops refusals that echo the request, and that is accepted.
SAFETY_KEYWORDS = (
    "how to kill yourself", "ways to kill yourself", "best way to commit suicide", "how to self-harm",
    "make a pipe bomb", "build a bomb", "make a bomb at home", "homemade explosive", "make napalm",
    "synthesize sarin", "make ricin", "cook meth",
)

SPAM_KEYWORDS = (
    "crypto giveaway", "bitcoin giveaway", "nft giveaway", "free crypto", "free bitcoin", "send btc",
    "send eth", "double your bitcoin", "double your crypto", "guaranteed returns", "100x gem",
    "link in bio", "follow for follow", "buy followers", "make money fast", "dm me for promo",
)

MEDIA_PLACEHOLDERS = (
    "<media omitted>", "<image omitted>", "<video omitted>", "<audio omitted>", "[image]", "[video]",
    "[photo]", "[gif]", "[media]", "[audio]", "[sticker]", "pic.twitter.com/",
)


def assistant_text(sep: str = "\n\n") -> pl.Expr:
    """Every assistant turn joined, each its own paragraph (how the Gopher rules see a reply)."""
    return role_texts("assistant").list.join(sep)


def prompt_and_reply() -> pl.Expr:
    """User and assistant turns (no system prompt) in order: what language ID reads, since a one-line
    reply alone ("Of course.") is too short for it."""
    return pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") != "system").struct.field("content")).list.join("\n")


def all_text() -> pl.Expr:
    return pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n\n")


def phrase_hits(text: pl.Expr, phrases: tuple[str, ...]) -> pl.Expr:
    """Occurrences of any phrase, case-insensitive (Aho-Corasick, non-overlapping)."""
    if not phrases:
        return pl.lit(0.0)
    found = text.str.to_lowercase().str.extract_many([p.lower() for p in phrases], ascii_case_insensitive=True)
    return found.list.len().cast(pl.Float64)


def url_count() -> pl.Expr:
    """URLs in the example before PII masking: `metadata.pii.url` when the PII pass ran, plus any
    unmasked URL or [URL] placeholder still in the text (the larger of the two counts)."""
    text = pl.col("_all")
    counted = pl.col("metadata").str.json_path_match("$.pii.url").cast(pl.Float64, strict=False).fill_null(0.0)
    in_text = (text.str.count_matches(URL) + text.str.count_matches("[URL]", literal=True)).cast(pl.Float64)
    return pl.max_horizontal(counted, in_text)


def distinct_content_words(text: pl.Expr, stop_words: tuple[str, ...] = STOP_WORDS) -> pl.Expr:
    words = text.str.to_lowercase().str.extract_all(r"[\p{L}\p{N}][\p{L}\p{N}'’]*").list.unique()
    return words.list.set_difference(pl.lit(list(stop_words), dtype=pl.List(pl.Utf8))).list.len().cast(pl.Float64)


SENTENCE = r"[^.!?\n]*[\p{L}\p{N}][^.!?\n]*[.!?]*"


def generic_share(text: pl.Expr, phrases: tuple[str, ...]) -> pl.Expr:
    """Share of sentences that contain a generic phrase (sentences end at . ! ? or a line break).

    A sentence holding a phrase means the whole text holds it, so texts without any are split as ""
    (the per-sentence check only runs on the few that have one). Exact for ASCII phrases; a non-ASCII
    one could meet Greek final-sigma lowercasing, which depends on the text around a sentence."""
    if not phrases:
        return pl.lit(0.0)
    lowered = [p.lower() for p in phrases]
    if all(p.isascii() for p in lowered):
        text_with_phrase = pl.when(text.str.to_lowercase().str.contains_any(lowered)).then(text).otherwise(pl.lit(""))
    else:
        text_with_phrase = text
    generic = text_with_phrase.str.extract_all(SENTENCE).list.eval(
        pl.element().str.to_lowercase().str.contains_any(lowered).cast(pl.Int32)).list.sum()
    return (generic / text.str.count_matches(SENTENCE).clip(lower_bound=1)).cast(pl.Float64)


def text_columns() -> list[pl.Expr]:
    """Texts and tokens every content rule reads, computed once per frame (`evaluate` adds them)."""
    tokens = pl.col("_answer").str.extract_all(TOKEN)
    return [
        assistant_text().alias("_answer"), prompt_and_reply().alias("_dialog"), all_text().alias("_all"),
    ], [
        tokens.alias("_tokens"),
        tokens.list.eval(pl.element().filter(pl.element().str.contains(r"[\p{L}\p{N}_]"))).alias("_words"),
    ]


def gopher_quality_scores() -> dict[str, pl.Expr]:
    """The Gopher quality statistics of the reply, one expression per rule (see `text_columns`)."""
    text, tokens, words = pl.col("_answer"), pl.col("_tokens"), pl.col("_words")
    n_tokens = tokens.list.len().cast(pl.Float64).clip(lower_bound=1)
    lines = text.str.split("\n")
    n_lines = lines.list.len().cast(pl.Float64).clip(lower_bound=1)
    line_share = lambda pattern: lines.list.eval(pl.element().str.contains(pattern).cast(pl.Int32)).list.sum() / n_lines  # noqa: E731
    avg_len = words.list.eval(pl.element().str.len_chars()).list.mean().fill_null(0.0)
    lower_words = words.list.eval(pl.element().str.to_lowercase()).list.unique()
    stops = pl.lit(list(GOPHER_STOP_WORDS), dtype=pl.List(pl.Utf8))
    return {
        "gopher_min_words": words.list.len().cast(pl.Float64),
        "gopher_max_words": words.list.len().cast(pl.Float64),
        "gopher_min_avg_word_length": avg_len,
        "gopher_max_avg_word_length": avg_len,
        "gopher_hash_ratio": text.str.count_matches("#", literal=True) / n_tokens,
        "gopher_ellipsis_ratio": (text.str.count_matches(r"\.\.\.|…")) / n_tokens,
        "gopher_bullet_lines": line_share(r"^\s*[•-]"),
        "gopher_ellipsis_lines": line_share(r"(?:\.\.\.|…)\s*$"),
        "gopher_alpha_words": words.list.eval(pl.element().str.contains(r"\p{L}").cast(pl.Int32)).list.sum() / n_tokens,
        "gopher_stop_words": lower_words.list.set_intersection(stops).list.len().cast(pl.Float64),
    }
