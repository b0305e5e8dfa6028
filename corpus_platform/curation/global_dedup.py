"""Global exact + near-duplicate dedup through a persistent index in DuckDB.

Two halves, so that a new day costs work proportional to that day and the final dataset does not
depend on the order partitions were materialized in:

`index_partition` (the partitioned `deduplicated_examples` stage)
    Removes exact duplicates *within* the partition (same SHA-256 of the normalized conversation),
    keeping the first by the keep rule below. For the survivors it computes MinHash band keys
    (`minhash`, datasketch-compatible signatures) and looks them up in `corpus.minhash_bands`, the
    band index of every other partition: only the candidates' texts are read back, and every
    candidate pair is verified by the exact Jaccard of its 5-word shingle sets. Same-hash examples
    of other partitions become `exact` pairs. The partition's band rows and every pair touching it
    are replaced together, so rematerializing any partition in any order leaves the same pairs.
    It is two calls, so that a process holds the warehouse only for the part that reads it:
    `prepare_partition` (no warehouse: exact dedup within the partition, signatures, band keys, pairs
    within it) and `commit_partition` (the index lookups and cross-partition verification), whose result
    is written in the same warehouse session as the lookups.

`resolve_clusters` (the unpartitioned `duplicate_clusters` asset)
    Connected components of the exact and near pairs among the examples that survived scoring;
    each cluster keeps one example by the keep rule: higher heuristic quality, then engagement,
    then earliest `created_at`, then the smallest example id. It reads the pairs and their
    endpoints only, not the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from corpus_platform.curation.decisions import DUPLICATE, KEPT, PARTITION, decision_rows
from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.minhash import MinHasher, band_keys, candidate_pairs, jaccard_pairs, shingle_hashes
from corpus_platform.curation.near_dedup import choose_bands, normalized
from corpus_platform.curation.scoring import quality_expr
from corpus_platform.curation.semantic import DIM, SemanticSettings, cosine_pairs, embed, simhash_keys
from corpus_platform.warehouse import query

PAIR_SCHEMA = {"id_a": pl.Utf8, "source_a": pl.Utf8, "date_a": pl.Date, "id_b": pl.Utf8, "source_b": pl.Utf8,
               "date_b": pl.Date, "kind": pl.Utf8, "jaccard": pl.Float64, "cosine": pl.Float64}
PAIR_COLUMNS = list(PAIR_SCHEMA)
EMBEDDING_SCHEMA = {"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date, "embedding": pl.Array(pl.Float32, 384)}
CLUSTER_COLUMNS = ["example_id", "source", "date", "cluster_id", "kept_id", "size", "kind", "jaccard"]


@dataclass(frozen=True)
class DedupSettings:
    threshold: float = 0.8  # Jaccard of 5-word shingle sets at or above which one of two is removed
    related_threshold: float = 0.5  # pairs at or above (below `threshold`) stay on one side of the split
    bands: int | None = None  # default: `near_dedup.choose_bands(threshold)` (16 x 5 at 0.8)
    rows: int | None = None
    seed: int = 1
    near: bool = True  # False: exact dedup only
    semantic: SemanticSettings = field(default_factory=SemanticSettings)  # opt-in embedding dedup
    _banding: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.related_threshold <= self.threshold < 1.0:
            raise ValueError("need 0 < related_threshold <= threshold < 1")
        banding = (self.bands, self.rows) if self.bands else choose_bands(self.threshold)
        object.__setattr__(self, "_banding", banding)

    @property
    def banding(self) -> tuple[int, int]:
        return self._banding


def keep_rule_columns(df: pl.DataFrame) -> pl.DataFrame:
    """_q (quality; `quality_score` when present), _eng (engagement), _created (ISO text, nulls last)."""
    meta = pl.col("metadata")
    eng = pl.coalesce([meta.str.json_path_match(f"$.{k}").cast(pl.Float64, strict=False)
                       for k in ("engagement", "score", "likes")]).fill_null(0.0)
    created = meta.str.json_path_match("$.created_at").str.replace(r"Z$", "+00:00").fill_null("~")
    q = pl.col("quality_score") if "quality_score" in df.columns else quality_expr()
    return df.with_columns(q.alias("_q"), eng.alias("_eng"), created.alias("_created"))


def sort_by_keep_rule(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(["_q", "_eng", "_created", "example_id", "date"], descending=[True, True, False, False, False])


def dedup_text(df: pl.DataFrame) -> pl.Series:
    """What near-dup compares: every turn's content, roles left out (they would inflate short pairs)."""
    text = df.select(pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n").alias("t"))["t"]
    return normalized(text)


def _gather(hashes: np.ndarray, offsets: np.ndarray):
    def get(docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start, length = offsets[docs], offsets[docs + 1] - offsets[docs]
        out = np.zeros(docs.size + 1, np.int64)
        np.cumsum(length, out=out[1:])
        idx = np.arange(int(out[-1])) + np.repeat(start - out[:-1], length)
        return hashes[idx], out
    return get


@dataclass
class IndexResult:
    kept: pl.DataFrame
    decisions: pl.DataFrame
    bands: pl.DataFrame
    pairs: pl.DataFrame
    stats: dict
    embeddings: pl.DataFrame


TOUCHES = "(date_a = ? AND source_a = ?) OR (date_b = ? AND source_b = ?)"  # a pair with one end in the partition


def index_writes(result: IndexResult, day, source: str) -> list[tuple]:
    """`replace_rows` specs of what a partition adds to the index (bands, pairs touching it, embeddings): written
    in the session of `commit_partition`, with the partition itself."""
    return [("minhash_bands", result.bands, PARTITION, [day, source]),
            ("near_duplicate_pairs", result.pairs, TOUCHES, [day, source, day, source]),
            ("example_embeddings", result.embeddings, PARTITION, [day, source])]


def cluster_writes(clusters: pl.DataFrame, decisions: pl.DataFrame) -> list[tuple]:
    """`replace_rows` specs of `resolve_clusters`' result: every cluster and every `cluster` decision, replaced."""
    return [("duplicate_clusters", clusters, "TRUE", []), ("decisions", decisions, "stage = ?", ["cluster"])]


def _node_frame(df: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return df.select(pl.col("example_id").alias(f"id_{prefix}"), pl.col("source").alias(f"source_{prefix}"),
                     pl.col("date").alias(f"date_{prefix}"))


def _canonical(pairs: pl.DataFrame) -> pl.DataFrame:
    """id_a < id_b (then date), one row per unordered pair, best Jaccard kept."""
    swap = (pl.col("id_a") > pl.col("id_b")) | ((pl.col("id_a") == pl.col("id_b")) & (pl.col("date_a") > pl.col("date_b")))
    cols = [pl.when(swap).then(pl.col(f"{c}_b")).otherwise(pl.col(f"{c}_a")).alias(f"{c}_a") for c in ("id", "source", "date")]
    cols += [pl.when(swap).then(pl.col(f"{c}_a")).otherwise(pl.col(f"{c}_b")).alias(f"{c}_b") for c in ("id", "source", "date")]
    out = pairs.select(*cols, "kind", "jaccard", "cosine")
    return (out.sort("jaccard", descending=True)
            .unique(["id_a", "source_a", "date_a", "id_b", "source_b", "date_b"], keep="first")
            .sort(PAIR_COLUMNS[:6]).select(PAIR_COLUMNS))


@dataclass
class Prepared:
    """What `prepare_partition` computes without the warehouse, for `commit_partition` to finish."""
    day: object
    source: str
    settings: DedupSettings
    columns: list[str]
    kept: pl.DataFrame
    decisions: pl.DataFrame
    stats: dict
    bands: pl.DataFrame
    embeddings: pl.DataFrame
    hashes: np.ndarray | None = None  # shingle hashes of `kept` (None: near and semantic dedup are off)
    offsets: np.ndarray | None = None
    emb: np.ndarray | None = None
    within: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    within_jac: np.ndarray = field(default_factory=lambda: np.zeros(0))
    within_cos: np.ndarray = field(default_factory=lambda: np.zeros(0))


def prepare_partition(df: pl.DataFrame, day, source: str, settings: DedupSettings) -> Prepared:
    """The part of a partition's dedup that reads no other partition (exact dedup within it, shingles,
    signatures, band keys, verified pairs within it): the bulk of the work, done without the warehouse
    so that other processes can use the warehouse meanwhile."""
    hashed = with_content_hash(df)
    # The keep rule (a quality score, half of this function's time if computed for every row) only decides
    # among rows that share a content hash; every other row is its hash's only example, hence kept.
    shared = pl.col("content_hash").is_duplicated()
    ranked = sort_by_keep_rule(keep_rule_columns(hashed.filter(shared)))
    ranked = ranked.with_columns(pl.col("example_id").first().over("content_hash").alias("_keeper"))
    is_keeper = pl.col("example_id") == pl.col("_keeper")
    kept = pl.concat([hashed.filter(~shared), ranked.filter(is_keeper).select(hashed.columns)]).sort("example_id")
    dups = ranked.filter(~is_keeper)
    decisions = pl.concat([
        decision_rows(kept, stage="dedup", decision=KEPT),
        decision_rows(dups, stage="dedup", decision=DUPLICATE, rule=pl.lit("exact_sha256"), score=1.0, threshold=1.0,
                      duplicate_of=pl.col("_keeper")),
    ])
    stats = {"rows_in": df.height, "exact_within": dups.height, "exact_across": 0, "candidates_within": 0,
             "index_matches": 0, "texts_read": 0, "near_pairs": 0, "semantic_pairs": 0, "related_pairs": 0}
    bands = pl.DataFrame(schema={"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date, "bucket": pl.UInt64})
    prep = Prepared(day, source, settings, [c for c in df.columns if c != "content_hash"] + ["content_hash"],
                    kept, decisions, stats, bands, pl.DataFrame(schema=EMBEDDING_SCHEMA))
    sem = settings.semantic
    if not ((settings.near or sem.enabled) and kept.height):
        return prep
    text = dedup_text(kept)
    prep.hashes, prep.offsets = shingle_hashes(text)
    eligible = np.flatnonzero(np.diff(prep.offsets) > 0)
    key_parts = []
    if settings.near:
        b, r = settings.banding
        key_parts.append(band_keys(MinHasher(b * r, settings.seed).signatures(prep.hashes, prep.offsets), b, r)[:, eligible])
    if sem.enabled:
        prep.emb = np.zeros((kept.height, DIM), np.float32)
        prep.emb[eligible] = embed(text.gather(eligible), sem)
        key_parts.append(simhash_keys(prep.emb[eligible], sem))
        prep.embeddings = kept.select("example_id", "source", "date").select(pl.all().gather(eligible)).with_columns(
            pl.Series("embedding", prep.emb[eligible], dtype=pl.Array(pl.Float32, DIM)))
    keys = np.concatenate(key_parts)
    ids = kept["example_id"].gather(eligible)
    prep.bands = pl.DataFrame({"example_id": pl.concat([ids] * keys.shape[0]), "bucket": keys.reshape(-1)}).with_columns(
        pl.lit(source).alias("source"), pl.lit(day).cast(pl.Date).alias("date")).select(bands.columns)
    prep.within = eligible[candidate_pairs(keys)] if eligible.size > 1 else np.zeros((0, 2), np.int64)
    stats["candidates_within"] = len(prep.within)
    if len(prep.within):
        prep.within_jac = jaccard_pairs(_gather(prep.hashes, prep.offsets), prep.within)
        prep.within_cos = cosine_pairs(prep.emb, prep.within) if prep.emb is not None else np.full(len(prep.within), np.nan)
    return prep


def index_partition(df: pl.DataFrame, con: duckdb.DuckDBPyConnection, day, source: str,
                    settings: DedupSettings) -> IndexResult:
    """Dedup one partition against itself and, through the index, against every other partition."""
    return commit_partition(prepare_partition(df, day, source, settings), con)


def commit_partition(prep: Prepared, con: duckdb.DuckDBPyConnection) -> IndexResult:
    """The part that reads the other partitions (same-hash rows, band-index candidates, their texts) and
    verifies the candidates. Its result must be written in the same warehouse session: two partitions
    looked up concurrently would each miss the other."""
    day, source, settings, kept, stats = prep.day, prep.source, prep.settings, prep.kept, dict(prep.stats)
    others = "NOT (o.date = ? AND o.source = ?)"
    pair_parts: list[pl.DataFrame] = []
    con.register("_mine", kept.select("example_id", "content_hash").to_arrow())
    try:
        exact = query(con, f"""
            SELECT m.example_id AS id_a, o.example_id AS id_b, o.source AS source_b, o.date AS date_b
            FROM _mine m JOIN corpus.deduplicated_examples o USING (content_hash) WHERE {others}""", [day, source])
    finally:
        con.unregister("_mine")
    if exact.height:
        pair_parts.append(exact.with_columns(pl.lit(source).alias("source_a"), pl.lit(day).cast(pl.Date).alias("date_a"),
                                             pl.lit("exact").alias("kind"), pl.lit(1.0).alias("jaccard")))
    stats["exact_across"] = exact.height

    sem, emb = settings.semantic, prep.emb
    if prep.hashes is not None:
        con.register("_bands", prep.bands.select("example_id", "bucket").to_arrow())
        try:
            cross = query(con, f"""
                SELECT DISTINCT m.example_id AS id_a, o.example_id AS id_b, o.source AS source_b, o.date AS date_b
                FROM _bands m JOIN corpus.minhash_bands o USING (bucket) WHERE {others}""", [day, source])
        finally:
            con.unregister("_bands")
        if exact.height:  # already paired as exact
            cross = cross.join(exact, on=["id_a", "id_b", "source_b", "date_b"], how="anti")
        stats["index_matches"] = cross.height
        other_docs = cross.select("id_b", "source_b", "date_b").unique().sort("id_b", "date_b")
        if other_docs.height:
            con.register("_want", other_docs.to_arrow())
            try:
                texts = query(con, f"""
                    SELECT o.example_id AS id_b, o.source AS source_b, o.date AS date_b, o.messages
                           {", e.embedding" if sem.enabled else ""}
                    FROM corpus.deduplicated_examples o
                    JOIN _want w ON w.id_b = o.example_id AND w.source_b = o.source AND w.date_b = o.date
                    {"LEFT JOIN corpus.example_embeddings e USING (example_id, source, date)" if sem.enabled else ""}""")
            finally:
                con.unregister("_want")
            other_docs = other_docs.join(texts, on=["id_b", "source_b", "date_b"], how="inner").sort("id_b", "date_b")
            stats["texts_read"] = other_docs.height
        n = kept.height
        cross_rows, cross_jac, cross_cos = np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0)
        if cross.height and other_docs.height:
            oh, oo = shingle_hashes(dedup_text(other_docs))
            all_hashes = np.concatenate([prep.hashes, oh])
            all_offsets = np.concatenate([prep.offsets, prep.offsets[-1] + oo[1:]])
            if emb is not None:
                other_emb = np.array([v if v is not None else np.zeros(DIM) for v in other_docs["embedding"].to_list()],
                                     np.float32).reshape(-1, DIM)
                emb = np.concatenate([emb, other_emb])
            row_of = dict(zip(kept["example_id"].to_list(), range(n)))
            other_key = other_docs.select(pl.concat_str(["id_b", "source_b", pl.col("date_b").cast(pl.Utf8)], separator="|"))
            other_row = dict(zip(other_key.to_series().to_list(), range(n, n + other_docs.height)))
            ck = cross.select(pl.col("id_a").replace_strict(row_of, return_dtype=pl.Int64).alias("u"),
                              pl.concat_str(["id_b", "source_b", pl.col("date_b").cast(pl.Utf8)], separator="|")
                              .replace_strict(other_row, default=-1, return_dtype=pl.Int64).alias("v")).filter(pl.col("v") >= 0)
            cross_rows = ck.to_numpy().astype(np.int64).reshape(-1, 2)
            if len(cross_rows):
                cross_jac = jaccard_pairs(_gather(all_hashes, all_offsets), cross_rows)
                cross_cos = cosine_pairs(emb, cross_rows) if emb is not None else np.full(len(cross_rows), np.nan)
        cand = np.concatenate([prep.within, cross_rows])
        if len(cand):
            jac = np.concatenate([prep.within_jac, cross_jac])
            cos = np.concatenate([prep.within_cos, cross_cos])
            near = jac >= settings.threshold
            semantic = ~near & (cos >= sem.threshold)
            related = ~near & ~semantic & (jac >= settings.related_threshold)
            ok = near | semantic | related
            cand, jac, cos = cand[ok], jac[ok], cos[ok]
            kind = np.where(near[ok], "near", np.where(semantic[ok], "semantic", "related"))
            nodes = pl.concat([_node_frame(kept, "x"), other_docs.select(
                pl.col("id_b").alias("id_x"), pl.col("source_b").alias("source_x"), pl.col("date_b").alias("date_x"))])
            a = nodes.select(pl.all().gather(cand[:, 0])).rename({"id_x": "id_a", "source_x": "source_a", "date_x": "date_a"})
            bb = nodes.select(pl.all().gather(cand[:, 1])).rename({"id_x": "id_b", "source_x": "source_b", "date_x": "date_b"})
            found = pl.concat([a, bb], how="horizontal").with_columns(
                pl.Series("jaccard", jac), pl.Series("kind", kind.tolist(), dtype=pl.Utf8),
                pl.Series("cosine", cos).fill_nan(None))
            pair_parts.append(found)
            stats["near_pairs"] = int(near[ok].sum())
            stats["semantic_pairs"] = int(semantic[ok].sum())
            stats["related_pairs"] = int(related[ok].sum())

    pairs = pl.concat([p.with_columns([pl.lit(None).alias(c) for c in PAIR_SCHEMA if c not in p.columns])
                       .select([pl.col(c).cast(t) for c, t in PAIR_SCHEMA.items()]) for p in pair_parts]) if pair_parts \
        else pl.DataFrame(schema=PAIR_SCHEMA)
    return IndexResult(kept.select(prep.columns), prep.decisions, prep.bands, _canonical(pairs), stats, prep.embeddings)


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(u.size, np.int8), (u, v)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def resolve_clusters(con: duckdb.DuckDBPyConnection, settings: DedupSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(duplicate_clusters rows, `cluster` decision rows) over every scored example."""
    live = "SELECT example_id, source, date FROM corpus.scored_examples"
    edges = query(con, f"""
        SELECT p.* FROM corpus.near_duplicate_pairs p
        SEMI JOIN ({live}) a ON a.example_id = p.id_a AND a.source = p.source_a AND a.date = p.date_a
        SEMI JOIN ({live}) b ON b.example_id = p.id_b AND b.source = p.source_b AND b.date = p.date_b
        WHERE p.kind IN ('exact', 'near', 'semantic')""")
    empty = pl.DataFrame(schema={"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date, "cluster_id": pl.Utf8,
                                 "kept_id": pl.Utf8, "size": pl.Int32, "kind": pl.Utf8, "jaccard": pl.Float64})
    if edges.height == 0:
        return empty, decision_rows(empty, stage="cluster", decision=KEPT)
    ends = pl.concat([
        edges.select(pl.col("id_a").alias("example_id"), pl.col("source_a").alias("source"), pl.col("date_a").alias("date"), "jaccard", "cosine"),
        edges.select(pl.col("id_b").alias("example_id"), pl.col("source_b").alias("source"), pl.col("date_b").alias("date"), "jaccard", "cosine"),
    ]).group_by("example_id", "source", "date").agg(pl.col("jaccard").max(), pl.col("cosine").max())
    con.register("_ends", ends.select("example_id", "source", "date").to_arrow())
    try:
        attrs = query(con, """
            SELECT s.example_id, s.source, s.date, s.quality_score, s.metadata, s.content_hash
            FROM corpus.scored_examples s JOIN _ends USING (example_id, source, date)""")
    finally:
        con.unregister("_ends")
    nodes = sort_by_keep_rule(keep_rule_columns(attrs.join(ends, on=["example_id", "source", "date"])))
    nodes = nodes.with_row_index("_rank")
    key = ["example_id", "source", "date"]
    uv = (edges.join(nodes.select(pl.col("example_id").alias("id_a"), pl.col("source").alias("source_a"),
                                  pl.col("date").alias("date_a"), pl.col("_rank").alias("u")), on=["id_a", "source_a", "date_a"])
          .join(nodes.select(pl.col("example_id").alias("id_b"), pl.col("source").alias("source_b"),
                             pl.col("date").alias("date_b"), pl.col("_rank").alias("v")), on=["id_b", "source_b", "date_b"]))
    label = _components(nodes.height, uv["u"].to_numpy(), uv["v"].to_numpy())
    nodes = nodes.with_columns(pl.Series("_label", label))
    # Ranks follow the keep rule, so a component's smallest rank is its kept example.
    nodes = nodes.with_columns(
        pl.col("example_id").sort_by("_rank").first().over("_label").alias("kept_id"),
        pl.col("content_hash").sort_by("_rank").first().over("_label").alias("_kept_hash"),
        pl.col("example_id").min().over("_label").alias("cluster_id"),
        pl.len().over("_label").cast(pl.Int32).alias("size"),
        (pl.col("_rank") == pl.col("_rank").min().over("_label")).alias("_is_kept"),
    )
    kind = (pl.when(pl.col("_is_kept")).then(pl.lit("kept"))
            .when(pl.col("content_hash") == pl.col("_kept_hash")).then(pl.lit("exact"))
            .when(pl.col("jaccard") >= settings.threshold).then(pl.lit("near")).otherwise(pl.lit("semantic")))
    clusters = nodes.with_columns(kind.alias("kind"))
    clusters = clusters.with_columns(
        pl.when(pl.col("kind") == "kept").then(1.0).when(pl.col("kind") == "semantic").then(pl.col("cosine"))
        .otherwise(pl.col("jaccard")).alias("jaccard"))  # semantic members: their cosine
    clusters = clusters.select(CLUSTER_COLUMNS).sort(key)
    kept, dup = clusters.filter(pl.col("kind") == "kept"), clusters.filter(pl.col("kind") != "kept")
    decisions = pl.concat([
        decision_rows(kept, stage="cluster", decision=KEPT, rule=pl.lit("cluster_keeper"), score=pl.col("size").cast(pl.Float64)),
        decision_rows(dup, stage="cluster", decision=DUPLICATE,
                      rule=pl.when(pl.col("kind") == "exact").then(pl.lit("exact_sha256"))
                      .when(pl.col("kind") == "near").then(pl.lit("near_dup_jaccard")).otherwise(pl.lit("semantic_dup_cosine")),
                      score=pl.col("jaccard"), duplicate_of=pl.col("kept_id"),
                      threshold=pl.when(pl.col("kind") == "semantic").then(settings.semantic.threshold).otherwise(settings.threshold)),
    ])
    return clusters, decisions
