"""Text normalization applied to every turn before filtering and hashing.

NFKC folds compatibility forms (full-width letters, ligatures, non-breaking spaces) so that two
examples that read the same hash the same. Whitespace is collapsed but line breaks are kept, since
they carry structure (lists, code) that a fine-tuned model should learn.
"""

from __future__ import annotations

import polars as pl


def normalize_text(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.normalize("NFKC")
        .str.replace_all("\r\n?", "\n")
        .str.replace_all("[\u200b\ufeff]", "")  # zero-width space / BOM (ZWJ kept: emoji use it)
        .str.replace_all(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "")  # control characters (tab and newline kept)
        .str.replace_all(r"[^\S\n]+", " ")
        .str.replace_all(r" ?\n ?", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def normalize_messages(df: pl.DataFrame) -> pl.DataFrame:
    """Normalize the content of every turn; roles and turn order are untouched."""
    return df.with_columns(
        pl.col("messages").list.eval(
            pl.struct(
                pl.element().struct.field("role").alias("role"),
                normalize_text(pl.element().struct.field("content")).alias("content"),
            )
        )
    )


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
