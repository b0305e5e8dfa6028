"""Vectorized SHA-256 for string columns (DuckDB's, in memory), so hashing never loops per row in Python."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (export manifests, training data lineage)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_hex(values: pl.Series) -> pl.Series:
    if values.len() == 0:
        return pl.Series(values.name, [], dtype=pl.Utf8)
    con = duckdb.connect()
    try:
        frame = pl.DataFrame({"i": pl.int_range(0, values.len(), eager=True), "v": values.cast(pl.Utf8)})
        con.register("frame", frame.to_arrow())
        out = con.execute("SELECT sha256(v) AS h FROM frame ORDER BY i").pl()
    finally:
        con.close()
    return out["h"].alias(values.name)


def unit_interval(hex_digests: pl.Series) -> pl.Series:
    """Map hex digests to [0, 1) deterministically (first 13 hex digits = 52 bits, exact in a float)."""
    return (hex_digests.str.slice(0, 13).str.to_integer(base=16).cast(pl.Float64) / float(16**13)).alias("u")
