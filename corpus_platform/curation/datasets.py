"""Splits and exports rebuilt from the warehouse: what `dataset_splits` and `training_exports`
materialize, and what the user-data deletion job reruns after erasing someone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from corpus_platform.curation.decisions import KEPT, REJECTED, decision_rows
from corpus_platform.curation.decontamination import EvalIndex, find_contaminated, load_eval_texts
from corpus_platform.curation.global_dedup import keep_rule_columns, sort_by_keep_rule
from corpus_platform.curation.exports import ALL_FORMATS, write_exports
from corpus_platform.curation.splits import SplitSettings, assign_splits
from corpus_platform.review.verdicts import apply_verdicts
from corpus_platform.schema import utcnow
from corpus_platform.warehouse import query, replace_rows

SPLIT_COLUMNS = ["example_id", "source", "date", "split", "group_key", "quality_score", "content_hash"]


@dataclass(frozen=True)
class DatasetRules:
    splits: SplitSettings = field(default_factory=SplitSettings)
    author_caps: dict[str, int] = field(default_factory=dict)  # {source or "*": max examples per author}; 0 = none
    eval_files: tuple[Path, ...] = ()
    ngram: int = 13
    include_distilled: bool = True  # the best teacher answers (corpus.distilled_examples) join the candidates


def _author_cap(df: pl.DataFrame, caps: dict[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep at most the source's cap of examples per author (the best by the keep rule)."""
    if not caps or df.height == 0:
        return df, df.clear()
    default = caps.get("*", 0)
    author = pl.coalesce([pl.col("metadata").str.json_path_match(f"$.{k}") for k in ("author", "user_id")])
    cap = pl.col("source").replace_strict({k: v for k, v in caps.items() if k != "*"}, default=default, return_dtype=pl.Int64)
    counted = df.select(author.alias("_author"), cap.alias("_cap"), pl.len().over("source", author).alias("_n"))
    if not counted.filter(pl.col("_author").is_not_null() & (pl.col("_cap") > 0) & (pl.col("_n") > pl.col("_cap"))).height:
        return df, df.clear()  # nobody over the cap: skip ranking (the common case, and a new day's hot path)
    ranked = sort_by_keep_rule(keep_rule_columns(df)).with_columns(author.alias("_author"), cap.alias("_cap"))
    ranked = ranked.with_columns(pl.int_range(pl.len()).over("source", "_author").alias("_nth"))
    over = pl.col("_author").is_not_null() & (pl.col("_cap") > 0) & (pl.col("_nth") >= pl.col("_cap"))
    return ranked.filter(~over).select(df.columns), ranked.filter(over)


def rebuild_splits(con: duckdb.DuckDBPyConnection, rules: DatasetRules | SplitSettings) -> pl.DataFrame:
    """Assign every scored example that is not a cluster duplicate to a split, after decontamination and the
    author cap; replace the splits and the decision rows of those stages."""
    rules = rules if isinstance(rules, DatasetRules) else DatasetRules(splits=rules)
    text = ", s.messages" if rules.eval_files else ""  # the text is read only to decontaminate
    distilled = f"""UNION ALL SELECT s.example_id, s.source, s.date{text}, s.metadata, s.quality_score, s.content_hash
        FROM corpus.distilled_examples s""" if rules.include_distilled else ""
    scored = query(con, f"""
        SELECT s.example_id, s.source, s.date{text}, s.metadata, s.quality_score, s.content_hash
        FROM corpus.scored_examples s
        ANTI JOIN (SELECT * FROM corpus.duplicate_clusters WHERE kind <> 'kept') d USING (example_id, source, date)
        ANTI JOIN (SELECT * FROM corpus.decisions WHERE stage = 'judge' AND decision = 'rejected') j
             USING (example_id, source, date)
        {distilled}""")
    scored, review_decisions = apply_verdicts(con, scored)  # reviewers' verdicts: reject, bring back, edit
    decisions = [review_decisions]
    if rules.eval_files:
        index = EvalIndex.build(load_eval_texts(list(rules.eval_files)), rules.ngram)
        hit = find_contaminated(scored, index)
        scored = scored.join(hit.select("example_id", "source", "date"), on=["example_id", "source", "date"], how="anti")
        decisions.append(decision_rows(hit, stage="decontaminate", decision=REJECTED, rule=pl.lit(f"eval_{rules.ngram}gram_overlap"),
                                       score=pl.col("shared").cast(pl.Float64), threshold=1.0,
                                       duplicate_of=pl.lit("eval:") + pl.col("ref")))
    scored, capped = _author_cap(scored, rules.author_caps)
    if capped.height:
        decisions.append(decision_rows(capped, stage="cap", decision=REJECTED, rule=pl.lit("author_cap"),
                                       score=(pl.col("_nth") + 1).cast(pl.Float64), threshold=pl.col("_cap").cast(pl.Float64)))
    # A reviewer-kept duplicate joins its cluster's side; a distilled answer its original instruction's side.
    links = query(con, """
        SELECT id_a, date_a, id_b, date_b FROM corpus.near_duplicate_pairs WHERE kind IN ('related', 'near', 'exact', 'semantic')
        UNION ALL
        SELECT example_id, date, json_extract_string(metadata, '$.original_example_id'), date FROM corpus.distilled_examples""")
    split = assign_splits(scored.drop("messages", strict=False), rules.splits, links)
    decisions.append(decision_rows(split, stage="split", decision=KEPT, rule=pl.col("split"), score=pl.col("quality_score")))
    replace_rows(con, [
        ("dataset_splits", split.select(SPLIT_COLUMNS), "TRUE", []),
        ("decisions", pl.concat(decisions), "stage IN ('review', 'decontaminate', 'cap', 'split')", []),
    ])
    return split


def export_splits(con: duckdb.DuckDBPyConnection, exports_root: Path, formats: tuple[str, ...] = ALL_FORMATS,
                  think_block: bool = False) -> dict:
    """Write the training files of the current splits and record them in corpus.export_files."""
    df = query(con, """
        SELECT s.example_id, s.split, s.content_hash, s.source, s.quality_score, s.messages
        FROM corpus.split_examples s  -- dataset_splits with their messages, as the review left them
    """)
    manifest = write_exports(df, exports_root, formats=tuple(formats), think_block=think_block)
    version = manifest["version"]
    files = pl.DataFrame(manifest["files"]).with_columns(
        pl.lit(version).alias("export_version"),
        (pl.lit(str(exports_root / version) + "/") + pl.col("path")).alias("path"),
        pl.lit(utcnow(), dtype=pl.Datetime("us")).alias("created_at"),
    )
    replace_rows(con, [("export_files", files, "export_version = ?", [version])])
    return manifest
