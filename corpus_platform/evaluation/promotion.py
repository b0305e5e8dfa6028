"""The promotion gate and what a promotion changes on disk.

`adapters/current` is what serving should load: it moves only when an adapter is significantly
(p < max_p) and meaningfully (d > min_d, in the improving direction) better than its base. It is a
relative symlink swapped atomically (a temp link renamed over it), or a pointer file where the
filesystem has no symlinks, so a reader never sees it missing or half-written.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

CURRENT = "current"
PROMOTED = "promoted.json"


def gate(statistics: dict, max_p: float = 0.05, min_d: float = 0.3) -> dict:
    p, d = statistics.get("p_value"), statistics.get("cohens_d")
    ok_p = p is not None and not math.isnan(p) and p < max_p
    ok_d = d is not None and not math.isnan(d) and d > min_d
    reasons = [f"p = {p:.4g} {'<' if ok_p else '>='} {max_p}" if p is not None else "no p-value",
               f"d = {d:.3g} {'>' if ok_d else '<='} {min_d}" if d is not None else "no effect size"]
    return {"passed": bool(ok_p and ok_d), "p_value": p, "cohens_d": d, "max_p": max_p, "min_d": min_d,
            "source": statistics.get("source"), "reason": ", ".join(reasons)}


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def point_current(adapters_root: Path, name: str) -> str:
    """Swap `adapters/current` to `name`; returns 'symlink' or 'pointer-file'."""
    adapters_root = Path(adapters_root)
    tmp = adapters_root / f".{CURRENT}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(name, tmp, target_is_directory=True)
        kind = "symlink"
    except (OSError, NotImplementedError):
        tmp.write_text(name + "\n")
        kind = "pointer-file"
    os.replace(tmp, adapters_root / CURRENT)
    return kind


def current_adapter(adapters_root: Path) -> Path | None:
    """The promoted adapter dir, through the symlink or the pointer file; None before any promotion."""
    link = Path(adapters_root) / CURRENT
    if link.is_symlink():
        return Path(adapters_root) / os.readlink(link)
    if link.is_file():
        return Path(adapters_root) / link.read_text().strip()
    return None


def record_verdict(adapter_dir: Path, verdict: dict) -> dict:
    """Write the verdict into evaluation.json (`promotion`); on a pass also promoted.json and `current`."""
    adapter_dir = Path(adapter_dir)
    verdict = {**verdict, "promoted": verdict["passed"], "adapter": adapter_dir.name,
               "decided_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    evaluation_path = adapter_dir / "evaluation.json"
    if evaluation_path.is_file():
        evaluation = json.loads(evaluation_path.read_text())
        _write_json_atomic(evaluation_path, {**evaluation, "promotion": verdict})
    if verdict["passed"]:
        _write_json_atomic(adapter_dir / PROMOTED, verdict)
        verdict["current_kind"] = point_current(adapter_dir.parent, adapter_dir.name)
    return verdict
