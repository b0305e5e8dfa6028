"""lora_adapter: a LoRA adapter trained on the latest export's train split, validated on val."""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from corpus_platform.curation.exports import latest_export
from corpus_platform.defs.curation.assets import training_exports
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.training.lora import LOSS_CURVES, train_lora
from corpus_platform.training.models import resolve_base_model
from corpus_platform.training.tracking import WandbSettings, png_markdown

LATEST = "LATEST"
WORK = ".work"


def latest_adapter(adapters_root: Path) -> Path:
    pointer = adapters_root / LATEST
    if not pointer.exists():
        raise FileNotFoundError(f"no adapter yet under {adapters_root}: materialize lora_adapter first")
    return adapters_root / pointer.read_text().strip()


def materialized_path(instance: dg.DagsterInstance, key: dg.AssetKey, field: str) -> Path | None:
    """The path an asset's latest materialization recorded in its metadata (what a check should look at)."""
    event = instance.get_latest_materialization_event(key)
    value = event.asset_materialization.metadata.get(field) if event and event.asset_materialization else None
    return Path(value.value) if value is not None else None


def _point_latest(adapters_root: Path, name: str) -> None:
    tmp = adapters_root / f".{LATEST}.tmp-{os.getpid()}"
    tmp.write_text(name + "\n")
    os.replace(tmp, adapters_root / LATEST)


@dg.asset(
    deps=[training_exports], group_name="training", kinds={"pytorch"},
    description="LoRA adapter (transformers + peft, loss on assistant tokens only, early stopping on eval loss, "
                "resumable checkpoints, W&B tracking) trained on the latest export.",
)
def lora_adapter(context: dg.AssetExecutionContext, corpus_home: CorpusHome, training: TrainingSettings) -> dg.MaterializeResult:
    layout = corpus_home.layout
    export_dir = latest_export(layout.exports)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    if manifest["counts"]["train"] == 0:
        raise dg.Failure(description=f"export {manifest['version']} has no training rows")
    base = resolve_base_model(training.base_model, layout.models)
    name = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{manifest['version']}"
    out = layout.adapters / name
    out.parent.mkdir(parents=True, exist_ok=True)
    lineage = {
        "base_model": training.base_model,
        "base_model_path": str(base),
        "export_version": manifest["version"],
        "export_dir": str(export_dir),
        "export_files": manifest["files"],
    }
    # Checkpoints live per data version, so a rerun after a kill resumes (the adapter name has a timestamp).
    work_dir = layout.adapters / WORK / manifest["version"]
    context.log.info(f"training on export {manifest['version']} ({manifest['counts']}) from base {training.base_model}; "
                     f"checkpoints in {work_dir}")
    tracking = WandbSettings(dir=str(layout.home / "wandb"), project=training.wandb_project,
                             mode=None if training.wandb_enabled else "disabled", tags=[manifest["version"]])
    metrics = train_lora(
        base_model_path=base,
        train_path=export_dir / "openai_chat" / "train.jsonl",
        val_path=export_dir / "openai_chat" / "val.jsonl",
        output_dir=out,
        config=training.lora_config(),
        work_dir=work_dir,
        lineage=lineage,
        tracking=tracking,
    )
    _point_latest(layout.adapters, name)
    if metrics["resumed_from_step"]:
        context.log.info(f"resumed from checkpoint-{metrics['resumed_from_step']}")
    wandb_info = metrics.get("wandb", {})
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "base_model": training.base_model,
            "export_version": manifest["version"],
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None},
            "loss_curves": dg.MetadataValue.md(png_markdown(out / LOSS_CURVES)),
            "model_card": dg.MetadataValue.path(str(out / "README.md")),
            "wandb": f"{wandb_info.get('mode')} {wandb_info.get('run_dir', '')}".strip(),
        },
        data_version=dg.DataVersion(name),
    )
