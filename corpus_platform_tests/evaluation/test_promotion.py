"""The promotion gate's rule and what a promotion changes on disk: promoted.json and `adapters/current`."""

import json
import os

import pytest

from corpus_platform.evaluation.promotion import CURRENT, current_adapter, gate, point_current, record_verdict


def adapter(root, name, p, d):
    path = root / name
    path.mkdir(parents=True)
    (path / "evaluation.json").write_text(json.dumps({"statistics": {"p_value": p, "cohens_d": d, "source": "nll"}}))
    return path


@pytest.mark.parametrize("p, d, passed", [
    (0.01, 0.5, True),
    (0.01, 0.3, False),    # d must exceed the minimum
    (0.05, 0.9, False),    # p must be below the maximum
    (0.01, -0.8, False),   # significant, but the adapter is worse
    (float("nan"), 1.0, False),
])
def test_gate_needs_significance_and_effect_size_in_the_improving_direction(p, d, passed):
    verdict = gate({"p_value": p, "cohens_d": d}, max_p=0.05, min_d=0.3)
    assert verdict["passed"] is passed
    assert "p = " in verdict["reason"] and "d = " in verdict["reason"]


def test_current_moves_only_on_a_pass(tmp_path):
    good = adapter(tmp_path, "a-good", 0.001, 0.9)
    verdict = record_verdict(good, gate(json.loads((good / "evaluation.json").read_text())["statistics"]))
    assert verdict["promoted"] and verdict["current_kind"] == "symlink"
    assert (tmp_path / CURRENT).is_symlink() and os.readlink(tmp_path / CURRENT) == "a-good"  # relative
    assert current_adapter(tmp_path) == good and (tmp_path / CURRENT / "evaluation.json").is_file()
    assert json.loads((good / "promoted.json").read_text())["promoted"] is True
    assert json.loads((good / "evaluation.json").read_text())["promotion"]["passed"] is True

    bad = adapter(tmp_path, "b-bad", 0.4, 0.1)
    verdict = record_verdict(bad, gate({"p_value": 0.4, "cohens_d": 0.1}))
    assert not verdict["promoted"] and not (bad / "promoted.json").exists()
    assert current_adapter(tmp_path) == good  # unchanged
    assert json.loads((bad / "evaluation.json").read_text())["promotion"]["passed"] is False

    better = adapter(tmp_path, "c-better", 0.0001, 1.5)
    record_verdict(better, gate({"p_value": 0.0001, "cohens_d": 1.5}))
    assert current_adapter(tmp_path) == better
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp link left


def test_pointer_file_where_symlinks_are_unavailable(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assert point_current(tmp_path, "a") == "pointer-file"
    assert (tmp_path / CURRENT).read_text() == "a\n" and current_adapter(tmp_path) == tmp_path / "a"
