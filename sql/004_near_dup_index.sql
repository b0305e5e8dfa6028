-- The persistent near-duplicate index: global dedup whose cost for a new day is proportional to that day.
-- deduplicated_examples writes its partition's rows here; duplicate_clusters resolves them globally.

-- MinHash LSH band keys of every example kept by a partition's dedup (band number folded into the key),
-- so a new day finds its candidates by a join on `bucket` instead of rescanning text.
CREATE TABLE corpus.minhash_bands (
    example_id VARCHAR  NOT NULL,
    source     VARCHAR  NOT NULL,
    date       DATE     NOT NULL,
    bucket     UBIGINT  NOT NULL
);

-- Verified pairs (exact 5-word-shingle Jaccard), id_a < id_b. kind: exact (same normalized text, other
-- partition), near (Jaccard >= the dedup threshold: one of the two is removed), related (Jaccard >= the
-- split-grouping threshold: both kept, but kept on one side of the train/test boundary). A partition's
-- rematerialization replaces every pair that touches it.
CREATE TABLE corpus.near_duplicate_pairs (
    id_a     VARCHAR NOT NULL,
    source_a VARCHAR NOT NULL,
    date_a   DATE    NOT NULL,
    id_b     VARCHAR NOT NULL,
    source_b VARCHAR NOT NULL,
    date_b   DATE    NOT NULL,
    kind     VARCHAR NOT NULL,
    jaccard  DOUBLE  NOT NULL
);

-- Unpartitioned: every member of a duplicate cluster (connected exact + near pairs among scored examples)
-- and the one example kept for it (higher quality, then engagement, then earliest, then smallest id).
CREATE TABLE corpus.duplicate_clusters (
    example_id VARCHAR NOT NULL,
    source     VARCHAR NOT NULL,
    date       DATE    NOT NULL,
    cluster_id VARCHAR NOT NULL,  -- the smallest member id: stable while the cluster's members are
    kept_id    VARCHAR NOT NULL,
    size       INTEGER NOT NULL,
    kind       VARCHAR NOT NULL,  -- kept | exact | near
    jaccard    DOUBLE  NOT NULL   -- the member's strongest verified pair (1.0 for the kept example)
);
