"""Training files from the splits: OpenAI chat JSONL and Alpaca JSON per split, plus a manifest.

An export directory is content-addressed (`exports/<version>/`, version = hash of what is in the
splits) and written to a temporary directory that is renamed into place, so a reader never sees a
half-written export. `exports/LATEST` names the newest version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl

from corpus_platform.curation.hashing import file_sha256

SPLITS = ("train", "val", "test")
FORMATS = ("openai_chat", "alpaca")
LATEST = "LATEST"


def export_version(df: pl.DataFrame) -> str:
    """Hash of (split, example_id, content_hash) rows: the same data gives the same version."""
    lines = (
        df.select(pl.concat_str(["split", "example_id", "content_hash"], separator="\x1f").alias("k"))
        .sort("k")["k"]
        .str.join("\n")
        .item()
        if df.height
        else ""
    )
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()[:12]


def _alpaca(messages: list[dict]) -> dict:
    """Last user turn as instruction, last assistant reply as output, earlier pairs as `history`.

    Consecutive turns of one role are merged (nothing is dropped). Alpaca cannot hold an assistant turn
    before the first user turn (a greeting): it stays in the OpenAI chat export only. The filter rule
    `ends_with_assistant_reply` guarantees at least one user -> assistant exchange.
    """
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    pairs: list[list[str]] = []
    pending, previous = None, None
    for m in messages:
        if m["role"] == "user":
            pending = m["content"] if pending is None else pending + "\n\n" + m["content"]
        elif m["role"] == "assistant":
            if pending is not None:
                pairs.append([pending, m["content"]])
                pending = None
            elif previous == "assistant" and pairs:
                pairs[-1][1] += "\n\n" + m["content"]
        previous = m["role"]
    if not pairs:
        raise ValueError("no user -> assistant exchange to export (the ends_with_assistant_reply filter rejects these)")
    *history, (instruction, output) = pairs
    record = {"instruction": instruction, "input": "", "output": output}
    if system:
        record["system"] = system
    if history:
        record["history"] = history
    return record


def _write_split(df: pl.DataFrame, out: Path, split: str) -> list[dict]:
    rows = df.filter(pl.col("split") == split).sort("example_id")
    files = []
    openai_path = out / "openai_chat" / f"{split}.jsonl"
    openai_path.parent.mkdir(parents=True, exist_ok=True)
    rows.select("messages").write_ndjson(openai_path)
    alpaca_path = out / "alpaca" / f"{split}.json"
    alpaca_path.parent.mkdir(parents=True, exist_ok=True)
    alpaca = [_alpaca(m) for m in rows["messages"].to_list()]
    alpaca_path.write_text(json.dumps(alpaca, ensure_ascii=False, indent=1), encoding="utf-8")
    for fmt, path in (("openai_chat", openai_path), ("alpaca", alpaca_path)):
        files.append({"format": fmt, "split": split, "path": str(path.relative_to(out)), "rows": rows.height,
                      "sha256": file_sha256(path)})
    return files


def write_exports(df: pl.DataFrame, exports_root: Path) -> dict:
    """Write every format for every split; returns the manifest (also saved as manifest.json)."""
    version = export_version(df)
    final = exports_root / version
    if not (final / "manifest.json").exists():
        tmp = exports_root / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = [f for split in SPLITS for f in _write_split(df, tmp, split)]
        manifest = {
            "version": version,
            "counts": {s: int(df.filter(pl.col("split") == s).height) for s in SPLITS},
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)  # a stale partial dir without a manifest
        os.replace(tmp, final)
    pointer = exports_root / f".{LATEST}.tmp-{os.getpid()}"
    pointer.write_text(version + "\n")
    os.replace(pointer, exports_root / LATEST)
    return json.loads((final / "manifest.json").read_text())


def latest_export(exports_root: Path) -> Path:
    pointer = exports_root / LATEST
    if not pointer.exists():
        raise FileNotFoundError(f"no export yet under {exports_root}: materialize training_exports first")
    return exports_root / pointer.read_text().strip()
