"""Training files from the splits, every format per split, plus a manifest.

Formats (`formats=`, all by default; see export_formats.py): OpenAI chat JSONL (validated against OpenAI's
fine-tuning format rules), Alpaca JSON, ShareGPT JSON, Qwen3 chat-template text JSONL (`think_block=`
adds Qwen3's empty think block to assistant turns), CSV and Parquet.

An export directory is content-addressed (`exports/<version>/`, version = hash of the rows' split,
example_id, content_hash, source and quality_score, the formats and think_block), so different data or
settings never share a directory. It is written to a temporary directory that is renamed into place, so
a reader never sees a half-written export. `exports/LATEST` names the newest version. Files are
byte-identical for the same rows whatever their order in the input (sorted by example_id, no timestamps,
paths or pids inside).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from corpus_platform.curation.export_formats import (ALL_FORMATS, PROXY_COUNTER, SUFFIX, TOKEN_LIMIT,
                                                     check_openai_chat, proxy_chat_tokens, token_stats,
                                                     write_format)
from corpus_platform.curation.hashing import file_sha256

SPLITS = ("train", "val", "test")
FORMATS = ALL_FORMATS
LATEST = "LATEST"
REQUIRED_COLUMNS = ("example_id", "split", "content_hash", "messages", "source", "quality_score")
# Bump when a writer's output changes for the same rows, so an old directory is never reused for new bytes.
EXPORT_REVISION = 2


def _require_columns(df: pl.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"export frame lacks columns {missing}: pass {', '.join(REQUIRED_COLUMNS)} "
                         "(source and quality_score come from corpus.dataset_splits)")


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Known, deduplicated, in ALL_FORMATS order (so the order asked for does not change the version)."""
    asked = list(formats) if not isinstance(formats, str) else [formats]
    unknown = sorted(set(asked) - set(ALL_FORMATS))
    if unknown or not asked:
        raise ValueError(f"export formats {unknown or asked} not among {', '.join(ALL_FORMATS)}")
    return tuple(f for f in ALL_FORMATS if f in asked)


def export_version(df: pl.DataFrame, formats: Iterable[str] = ALL_FORMATS, think_block: bool = False) -> str:
    """Hash of the settings and of (split, example_id, content_hash, source, quality_score) rows: the same
    data and settings give the same version, in any row order."""
    _require_columns(df)
    key = pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("\x00") for c in
                         ("split", "example_id", "content_hash", "source", "quality_score")], separator="\x1f")
    lines = df.select(key.alias("k")).sort("k")["k"].str.join("\n").item() if df.height else ""
    settings = json.dumps({"revision": EXPORT_REVISION, "formats": list(_formats(formats)),
                           "think_block": bool(think_block)}, sort_keys=True)
    return hashlib.sha256((settings + "\n" + lines).encode("utf-8")).hexdigest()[:12]


def _conversations(rows: pl.DataFrame) -> list[list[dict]]:
    """Each row's turns as dicts, optional keys that are null dropped (a wider struct stays valid)."""
    return [[{k: v for k, v in m.items() if v is not None or k in ("role", "content")} for m in ms]
            for ms in rows["messages"].to_list()]


def _validate(split: str, rows: pl.DataFrame, messages: list[list[dict]]) -> tuple[dict, list[int]]:
    """The guard on what is written: raises on any OpenAI format error; returns the split's summary and
    token counts."""
    tokens_given = proxy_chat_tokens(rows["messages"]) if rows.height else []
    issues, tokens = check_openai_chat([{"messages": m} for m in messages], tokens_given=tokens_given)
    ids = rows["example_id"].to_list()
    errors = [i for i in issues if i["severity"] == "error"]
    if errors:
        shown = "; ".join(f"example {ids[i['line'] - 1]} ({split}): rule {i['error']}: {i['detail']}"
                          for i in errors[:5])
        raise ValueError(f"{len(errors)} OpenAI chat format error(s) in the export, which the filters should have "
                         f"rejected: {shown}")
    over = [ids[i["line"] - 1] for i in issues if i["error"] == "too_many_tokens"]
    summary = {"examples": len(messages), "messages": sum(map(len, messages)), "errors": 0,
               "over_token_limit": len(over), "over_token_limit_ids": over[:20], "tokens": token_stats(tokens)}
    return summary, tokens


def _summary(per_split: dict[str, dict], token_counts: list[int]) -> dict:
    total = {k: sum(s[k] for s in per_split.values()) for k in ("examples", "messages", "errors", "over_token_limit")}
    return {"rules": "OpenAI chat fine-tuning format (cookbook chat_finetuning_data_prep checks)",
            "token_counter": PROXY_COUNTER, "token_limit": TOKEN_LIMIT, **total,
            "tokens": token_stats(token_counts), "splits": per_split}


def _write_all(df: pl.DataFrame, out: Path, version: str, formats: tuple[str, ...], think_block: bool) -> dict:
    files, per_split, all_tokens, prepared = [], {}, [], []
    for split in SPLITS:  # validate everything before writing anything
        rows = df.filter(pl.col("split") == split).sort("example_id", "content_hash")
        messages = _conversations(rows)
        per_split[split], tokens = _validate(split, rows, messages)
        all_tokens += tokens
        prepared.append((split, rows, messages))
    for fmt in formats:
        (out / fmt).mkdir(parents=True, exist_ok=True)
    for split, rows, messages in prepared:
        for fmt in formats:
            path = out / fmt / f"{split}.{SUFFIX[fmt]}"
            write_format(fmt, path, rows, messages, think_block)
            files.append({"format": fmt, "split": split, "path": path.relative_to(out).as_posix(),
                          "rows": rows.height, "sha256": file_sha256(path)})
    return {"version": version, "formats": list(formats), "think_block": think_block,
            "counts": {s: per_split[s]["examples"] for s in SPLITS}, "files": files,
            "validation": _summary(per_split, all_tokens)}


def write_exports(df: pl.DataFrame, exports_root: Path, formats: Iterable[str] = ALL_FORMATS,
                  think_block: bool = False) -> dict:
    """Write `formats` for every split; returns the manifest (also saved as manifest.json).

    `df` has example_id, split, content_hash, messages, source, quality_score. Raises ValueError naming the
    example and rule if a conversation breaks the OpenAI chat format (the filters make that impossible).
    """
    formats = _formats(formats)
    version = export_version(df, formats, think_block)
    final = exports_root / version
    if not (final / "manifest.json").exists():
        _remove_dead_temps(exports_root)
        tmp = exports_root / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            manifest = _write_all(df, tmp, version, formats, bool(think_block))
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                               encoding="utf-8", newline="\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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


def _remove_dead_temps(exports_root: Path) -> None:
    """Temp directories of writers that were killed (their pid is gone) would otherwise stay forever."""
    if not exports_root.is_dir():
        return
    for path in exports_root.glob(".tmp-*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
