"""Tracking: the W&B run is offline unless a key is configured, holds the per-step history and the adapter
artifact; the loss curves are a real PNG that the Dagster UI can show from metadata."""

import base64
import json

import pytest

from corpus_platform.training.tracking import (
    plot_loss_curves,
    png_markdown,
    read_offline_history,
    read_offline_records,
    resolve_wandb_mode,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("env, mode", [
    ({}, "offline"),
    ({"WANDB_MODE": "online"}, "offline"),  # no key: never the network
    ({"WANDB_API_KEY": "k"}, "online"),
    ({"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline"),
    ({"WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}, "disabled"),
])
def test_wandb_is_offline_unless_a_key_is_set(env, mode):
    assert resolve_wandb_mode(env) == mode


def test_offline_wandb_run_has_the_history_and_the_adapter_artifact(tracked_adapter):
    metrics = tracked_adapter["metrics"]
    info = metrics["wandb"]
    assert info["mode"] == "offline" and info["run_dir"].startswith(str(tracked_adapter["root"] / "wandb"))
    history = read_offline_history(info["run_dir"])
    train_steps = [row["_step"] for row in history if "train/loss" in row]
    assert train_steps == list(range(1, metrics["steps"] + 1))  # per-step loss
    assert all("train/learning_rate" in row and "train/grad_norm" in row for row in history if "train/loss" in row)
    eval_rows = {row["_step"]: row["eval/loss"] for row in history if "eval/loss" in row}
    assert eval_rows == {r["step"]: pytest.approx(r["eval_loss"]) for r in metrics["eval_history"]}
    assert any("loss_curves/path" in row for row in history)  # the PNG, as a W&B image
    records = read_offline_records(info["run_dir"])
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert [(a.type, a.name) for a in artifacts] == [("model", f"adapter-{tracked_adapter['out'].name}")]
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert {"rank", "learning_rate", "base_model", "export_version", "train_sha256"} <= set(config)
    assert config["rank"] == 4 and config["export_version"] == "abc123def456"


def test_loss_curves_png_is_valid_and_inlined_for_the_ui(tracked_adapter, tmp_path):
    from matplotlib.image import imread

    png = tracked_adapter["out"] / "loss_curves.png"
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    image = imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    markdown = png_markdown(png)
    assert markdown.startswith("![loss curves](data:image/png;base64,") and markdown.endswith(")")
    assert base64.b64decode(markdown[len("![loss curves](data:image/png;base64,"):-1]) == data

    empty = plot_loss_curves([], [], tmp_path / "empty.png")  # no history yet still renders
    assert empty.read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((tracked_adapter["out"] / "metrics.json").read_text())["train_history"]
