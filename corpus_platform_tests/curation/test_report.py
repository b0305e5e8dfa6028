"""The dataset report: right counts in the card, valid and byte-stable PNGs, "no data" for empty inputs."""

from __future__ import annotations

import base64
import re
import struct
from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.decisions import DECISION_SCHEMA
from corpus_platform.curation.report import CARD, IMAGES, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY = date(2024, 5, 1)


def splits_frame() -> pl.DataFrame:
    rows = []
    plan = {("train", "reddit"): 5, ("train", "synthetic"): 3, ("val", "reddit"): 1, ("test", "synthetic"): 1}
    i = 0
    for (split, source), n in plan.items():
        for _ in range(n):
            rows.append({"example_id": f"ex{i:02d}", "source": source, "split": split,
                         "quality_score": 3.0 + 0.6 * i, "judged_score": None if i % 3 == 0 else 5.0 + 0.4 * i,
                         "chars": 40 * (i + 1) ** 2})
            i += 1
    return pl.DataFrame(rows, schema={"example_id": pl.Utf8, "source": pl.Utf8, "split": pl.Utf8,
                                      "quality_score": pl.Float64, "judged_score": pl.Float64, "chars": pl.Int64})


def decisions_frame() -> pl.DataFrame:
    def rows(stage, decision, rule, n, start):
        return [{"example_id": f"d{stage}{start + k}", "source": "reddit", "date": DAY, "stage": stage,
                 "decision": decision, "rule": rule, "score": None, "threshold": None,
                 "duplicate_of": "ex00" if decision == "duplicate" else None, "decided_at": datetime(2024, 5, 2)}
                for k in range(n)]
    data = (rows("filter", "kept", None, 14, 0) + rows("filter", "rejected", "min_chars", 4, 100)
            + rows("filter", "rejected", "toxicity", 2, 200) + rows("dedup", "kept", None, 12, 0)
            + rows("dedup", "duplicate", None, 2, 300) + rows("score", "kept", None, 10, 0)
            + rows("score", "rejected", "min_quality_score", 2, 400))
    return pl.DataFrame(data, schema=DECISION_SCHEMA)


def clusters_frame() -> pl.DataFrame:
    return pl.DataFrame({"cluster_id": ["c1", "c2", "c3", "c4", "c5"], "size": [2, 2, 3, 7, 150]})


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_card_has_the_right_counts(tmp_path):
    result = build_report(splits_frame(), decisions_frame(), clusters_frame(), tmp_path, min_quality=3.0,
                          judge_threshold=7.0)
    md, s = result.markdown, result.summary
    assert s["examples"] == 10 and s["splits"] == {"train": 8, "val": 1, "test": 1}
    assert s["sources"] == {"reddit": 6, "synthetic": 4}
    assert s["split_source"]["train"] == {"reddit": 5, "synthetic": 3}
    assert s["judged_score"]["n"] == 6 and s["judged_score"]["share_judged"] == 0.6
    assert "**10 examples** from 2 source(s): train 8 (80.0%), val 1 (10.0%), test 1 (10.0%)." in md
    assert "| source | train | val | test | total |" in md
    assert "| reddit | 5 | 1 | 0 | 6 |" in md and "| synthetic | 3 | 0 | 1 | 4 |" in md
    assert "| **total** | **8** | **1** | **1** | **10** |" in md
    # funnel and rejection table (share of the examples decided at the stage)
    assert "| filter | 20 | 14 | 6 | 0 |" in md and "| dedup | 14 | 12 | 0 | 2 |" in md
    assert "| filter | `min_chars` | 4 | 20.0% |" in md
    assert "| dedup | `(duplicate)` | 2 | 14.3% |" in md
    assert "| score | `min_quality_score` | 2 | 16.7% |" in md
    assert [r["rule"] for r in s["rejections"]] == ["min_chars", "(duplicate)", "toxicity", "min_quality_score"]
    assert md.index("| filter | 20") < md.index("| dedup | 14") < md.index("| score | 12")
    # clusters
    assert s["clusters"] == {"count": 5, "members": 164, "removed": 159, "max_size": 150, "median_size": 3.0,
                             "mean_size": 32.8, "size_bins": {"2": 2, "3": 1, "6-10": 1, ">100": 1}}
    assert "5 clusters with 164 members; one example kept per cluster removes 159." in md
    assert "Largest: `c5` (150), `c4` (7)" in md
    assert "No data" not in md


def test_images_are_valid_pngs_inlined_for_the_ui(tmp_path):
    result = build_report(splits_frame(), decisions_frame(), clusters_frame(), tmp_path)
    assert set(result.images) == set(IMAGES)
    for name, path in result.images.items():
        assert path.parent == tmp_path and path.name == IMAGES[name]
        width, height = png_size(path)
        assert width > 200 and height > 100
    inlined = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", result.markdown)
    assert len(inlined) == len(IMAGES)
    assert {base64.b64decode(b) for b in inlined} == {p.read_bytes() for p in result.images.values()}
    card = (tmp_path / CARD).read_text()
    assert result.card_path == tmp_path / CARD and "data:image" not in card
    assert all(f"]({f})" in card for f in IMAGES.values())
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_output_is_deterministic(tmp_path):
    a = build_report(splits_frame(), decisions_frame(), clusters_frame(), tmp_path / "a")
    b = build_report(splits_frame().sample(fraction=1.0, shuffle=True, seed=3),
                     decisions_frame().sample(fraction=1.0, shuffle=True, seed=4),
                     clusters_frame().reverse(), tmp_path / "b")
    assert a.markdown == b.markdown and a.summary == b.summary
    assert all(a.images[k].read_bytes() == b.images[k].read_bytes() for k in a.images)


def test_empty_inputs_say_no_data(tmp_path):
    splits = pl.DataFrame(schema={"example_id": pl.Utf8, "source": pl.Utf8, "split": pl.Utf8,
                                  "quality_score": pl.Float64, "judged_score": pl.Float64, "chars": pl.Int64})
    result = build_report(splits, pl.DataFrame(schema=DECISION_SCHEMA),
                          pl.DataFrame(schema={"cluster_id": pl.Utf8, "size": pl.Int64}), tmp_path)
    md = result.markdown
    assert "No data: the dataset has no examples yet" in md
    assert "No data: no curation decisions recorded." in md
    assert "No data: no duplicate clusters" in md
    assert result.images == {} and result.summary["examples"] == 0 and result.summary["clusters"] == {"count": 0}
    assert (tmp_path / CARD).is_file()


def test_stale_plots_are_removed_when_a_section_has_no_data(tmp_path):
    build_report(splits_frame(), decisions_frame(), clusters_frame(), tmp_path)
    assert (tmp_path / IMAGES["cluster_sizes"]).is_file()
    result = build_report(splits_frame(), decisions_frame(), clusters_frame().head(0), tmp_path)
    assert "cluster_sizes" not in result.images and not (tmp_path / IMAGES["cluster_sizes"]).exists()


def test_nothing_judged_and_nothing_rejected(tmp_path):
    splits = splits_frame().with_columns(pl.lit(None, dtype=pl.Float64).alias("judged_score"))
    decisions = decisions_frame().filter(pl.col("decision") == "kept")
    result = build_report(splits, decisions, clusters_frame(), tmp_path)
    assert result.summary["judged_score"] == {"n": 0, "share_judged": 0.0}
    assert "| LLM-judge score | 0 (0.0%) | - | - | - | - |" in result.markdown
    assert "No rejections: every decided example was kept." in result.markdown
    assert "rejection_reasons" not in result.images and "score_histograms" in result.images


def test_per_member_cluster_rows_are_collapsed(tmp_path):
    members = pl.DataFrame({"example_id": ["a", "b", "c", "d", "e"], "cluster_id": ["a", "a", "c", "c", "c"],
                            "size": [2, 2, 3, 3, 3]})
    result = build_report(splits_frame(), decisions_frame(), members, tmp_path)
    assert result.summary["clusters"]["count"] == 2 and result.summary["clusters"]["members"] == 5


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_inputs_plot(tmp_path, n):
    result = build_report(splits_frame().head(n), decisions_frame().head(n), clusters_frame().head(n), tmp_path)
    assert result.summary["examples"] == n and all(png_size(p) for p in result.images.values())


def test_long_rejection_tables_are_capped(tmp_path):
    from corpus_platform.curation import report

    rules = [f"rule{i:02d}" for i in range(report.TABLE_ROWS + 5)]
    decisions = pl.DataFrame([{"example_id": f"x{i}", "source": "reddit", "date": DAY, "stage": "filter",
                               "decision": "rejected", "rule": r, "score": None, "threshold": None,
                               "duplicate_of": None, "decided_at": datetime(2024, 5, 2)} for i, r in enumerate(rules)],
                             schema=DECISION_SCHEMA)
    result = build_report(splits_frame(), decisions, clusters_frame(), tmp_path)
    assert len(result.summary["rejections"]) == len(rules)
    assert "| … | 5 more rules | 5 | |" in result.markdown and "`rule44`" not in result.markdown
