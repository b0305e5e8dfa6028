"""Jobs: curate one source × day partition; train and evaluate on everything curated so far."""

import dagster as dg

from corpus_platform.defs.curation.assets import (dataset_report, dataset_splits, deduplicated_examples, duplicate_clusters,
                                                  filtered_examples, judged_examples, scored_examples, training_exports)
from corpus_platform.defs.evaluation.assets import adapter_evaluation
from corpus_platform.defs.ingest.assets import raw_examples
from corpus_platform.defs.partitions import corpus_partitions
from corpus_platform.defs.training.assets import lora_adapter

curate_partition_job = dg.define_asset_job(
    "curate_partition",
    selection=dg.AssetSelection.assets(raw_examples, filtered_examples, deduplicated_examples, scored_examples),
    partitions_def=corpus_partitions,
    description="raw_examples -> filtered -> deduplicated -> scored for one source x day, with their checks.",
)

train_and_evaluate_job = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.assets(duplicate_clusters, judged_examples, dataset_splits, training_exports, dataset_report,
                                       lora_adapter, adapter_evaluation),
    description="Duplicate clusters and splits over every partition, exports, a LoRA adapter and its evaluation.",
)
