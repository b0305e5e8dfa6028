"""`corpus dedup` end to end (subprocess) and its JSONL block reader."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpus_platform.cli import jsonl_blocks, main, parse_block

BODY = " ".join(f"word{i}" for i in range(60))
NEAR = " ".join(f"word{i}" for i in range(59)) + " changed"  # J = 55 / 57 = 0.965
OTHER = " ".join(f"other{i}" for i in range(60))
DOCS = [
    {"id": 3, "text": BODY},
    {"id": 1, "text": NEAR, "meta": {"x": [1, 2]}},
    {"id": 2, "text": BODY + "  "},  # exact duplicate once normalized
    {"id": 10, "text": OTHER},
    {"id": 4, "text": None},
    {"id": 5},
]


def write_jsonl(path: Path, docs, gz: bool = False) -> Path:
    data = "".join(json.dumps(d) + "\n" for d in docs).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "corpus_platform.cli", *args], capture_output=True, text=True,
                          check=True, timeout=120)


def test_dedup_end_to_end(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl.gz", DOCS, gz=True)
    removed, pairs = tmp_path / "removed.txt", tmp_path / "pairs.tsv"
    out = run_cli("dedup", str(src), "--removed", str(removed), "--pairs", str(pairs)).stdout
    # 1 < 2 < 3 numerically: 1 kept; 2 and 3 are the same text (exact), near 1; 4 and 5 empty
    assert removed.read_text().split() == ["2", "3", "5"]
    assert "documents: 6" in out
    assert "exact duplicates removed: 2" in out  # 2 (of 3) and 5 (of 4, both empty)
    assert "near duplicates removed: 1" in out
    assert "clusters: 2" in out
    assert "seconds:" in out
    rows = [line.split("\t") for line in pairs.read_text().splitlines()]
    assert rows[0] == ["id_a", "id_b", "jaccard", "kind"]
    assert ["1", "2", str(55 / 57), "near"] in rows  # near pairs join exact-group representatives
    assert ["2", "3", "1.0", "exact"] in rows


def test_dedup_exact_only_and_fields(tmp_path):
    docs = [{"key": f"k{i}", "body": t} for i, t in enumerate([BODY, NEAR, BODY])]
    src = write_jsonl(tmp_path / "in.jsonl", docs)
    removed = tmp_path / "r.txt"
    run_cli("dedup", str(src), "--id-field", "key", "--text-field", "body", "--removed", str(removed),
            "--exact-only")
    assert removed.read_text().split() == ["k2"]


def test_main_in_process_and_threshold(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", DOCS[:2])
    removed = tmp_path / "r.txt"
    assert main(["dedup", str(src), "--removed", str(removed), "--threshold", "0.97"]) == 0
    assert removed.read_text() == ""  # 0.965 < 0.97
    with pytest.raises(SystemExit) as err:
        main(["dedup", str(src), "--removed", str(removed), "--threshold", "1.5"])
    assert err.value.code == 2


def test_blocks_keep_lines_whole(tmp_path):
    docs = [{"id": f"d{i}", "text": f"text number {i} " * (i % 7)} for i in range(500)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(json.dumps(d).encode() + b"\n" for d in docs).rstrip(b"\n"))  # no final newline
    blocks = list(jsonl_blocks(path, block_bytes=1000))
    assert len(blocks) > 10
    ids = [i for b in blocks for i in parse_block(b, "id", "text")[0].to_list()]
    assert ids == [d["id"] for d in docs]


def test_console_script_declared():
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["corpus"] == "corpus_platform.cli:main"
