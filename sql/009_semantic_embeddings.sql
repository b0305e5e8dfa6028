-- Sentence embeddings of the examples kept by a partition's dedup, when semantic dedup is on: read back
-- only for the candidates the band index proposes, to compute their exact cosine.
CREATE TABLE corpus.example_embeddings (
    example_id VARCHAR   NOT NULL,
    source     VARCHAR   NOT NULL,
    date       DATE      NOT NULL,
    embedding  FLOAT[384] NOT NULL
);

-- A semantic pair's cosine (NULL where embeddings were not computed).
ALTER TABLE corpus.near_duplicate_pairs ADD COLUMN cosine DOUBLE;
