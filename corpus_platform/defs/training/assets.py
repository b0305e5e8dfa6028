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
from corpus_platform.training.lora import train_lora
from corpus_platform.training.models import resolve_base_model

LATEST = "LATEST"


def latest_adapter(adapters_root: Path) -> Path:
    pointer = adapters_root / LATEST
    if not pointer.exists():
        raise FileNotFoundError(f"no adapter yet under {adapters_root}: materialize lora_adapter first")
    return adapters_root / pointer.read_text().strip()


def _point_latest(adapters_root: Path, name: str) -> None:
    tmp = adapters_root / f".{LATEST}.tmp-{os.getpid()}"
    tmp.write_text(name + "\n")
    os.replace(tmp, adapters_root / LATEST)


@dg.asset(
    deps=[training_exports], group_name="training", kinds={"pytorch"},
    description="LoRA adapter (transformers + peft, loss on assistant tokens only) trained on the latest export.",
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
    context.log.info(f"training on export {manifest['version']} ({manifest['counts']}) from base {training.base_model}")
    metrics = train_lora(
        base_model_path=base,
        train_path=export_dir / "openai_chat" / "train.jsonl",
        val_path=export_dir / "openai_chat" / "val.jsonl",
        output_dir=out,
        config=training.lora_config(),
    )
    lineage = {
        "base_model": training.base_model,
        "base_model_path": str(base),
        "export_version": manifest["version"],
        "export_dir": str(export_dir),
        "export_files": manifest["files"],
    }
    (out / "data_version.json").write_text(json.dumps(lineage, indent=1))
    _point_latest(layout.adapters, name)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "base_model": training.base_model,
            "export_version": manifest["version"],
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None},
        },
        data_version=dg.DataVersion(name),
    )
