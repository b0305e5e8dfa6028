"""Experiment tracking: one W&B run per training, and loss curves as a PNG.

W&B runs offline unless an API key is configured (training must never need the network); an offline run
lives under `CORPUS_HOME/wandb` and can be uploaded later with `wandb sync`. The loss curves are also
rendered to a PNG so the adapter dir and the Dagster UI show them without W&B.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WandbSettings:
    """Where and how a training run is tracked. `mode=None` resolves from the environment."""

    dir: str
    project: str = "corpus-platform"
    mode: str | None = None
    tags: list[str] = field(default_factory=list)


def resolve_wandb_mode(env: dict | None = None) -> str:
    """online only with WANDB_API_KEY set and WANDB_MODE not offline; WANDB_MODE=disabled turns W&B off."""
    env = os.environ if env is None else env
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode == "disabled":
        return "disabled"
    if env.get("WANDB_API_KEY") and mode not in ("offline", "dryrun"):
        return "online"
    return "offline"


def _artifact_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:120]


class WandbTracker:
    """Opens the run, streams the Trainer's log history to it (replaying history restored from a
    checkpoint on resume, so a resumed run holds the whole curve), logs the adapter as an artifact."""

    def __init__(self, settings: WandbSettings):
        self.settings = settings
        self.mode = settings.mode or resolve_wandb_mode()
        self.run = None

    def start(self, config: dict, name: str) -> None:
        if self.mode == "disabled":
            return
        import wandb

        root = Path(self.settings.dir)
        root.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.settings.project, dir=str(root), mode=self.mode, name=name, config=config,
            tags=list(self.settings.tags), job_type="train", reinit="finish_previous",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_machine_info=True),
        )

    def callback(self):
        from transformers import TrainerCallback

        tracker = self

        class WandbHistoryCallback(TrainerCallback):
            sent = 0

            def _flush(self, state):
                rows = state.log_history[self.sent:]
                self.sent = len(state.log_history)
                for row in rows:
                    tracker.log_row(row)

            def on_log(self, args, state, control, **kwargs):
                self._flush(state)

            def on_train_end(self, args, state, control, **kwargs):
                self._flush(state)

        return WandbHistoryCallback()

    def log_row(self, row: dict) -> None:
        """A Trainer log row as W&B metrics: eval_* -> eval/*, the rest -> train/*, at the row's step."""
        if self.run is None:
            return
        data = {}
        for key, value in row.items():
            if key in ("step", "epoch") or not isinstance(value, (int, float)):
                continue
            data[f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"] = value
        if "epoch" in row:
            data["train/epoch"] = row["epoch"]
        if data:
            self.run.log(data, step=int(row.get("step", 0)))

    def log_image(self, key: str, path: Path) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def log_adapter(self, adapter_dir: Path, summary: dict) -> None:
        """The finished adapter dir as a `model` artifact. `immutable`: the dir is never rewritten after
        the rename, so W&B reads the files in place instead of copying them to a staging area."""
        if self.run is None:
            return
        import wandb

        artifact = wandb.Artifact(_artifact_name(f"adapter-{Path(adapter_dir).name}"), type="model",
                                  metadata=summary)
        artifact.add_dir(str(adapter_dir), policy="immutable")
        self.run.log_artifact(artifact)
        self.run.summary.update(summary)

    def info(self) -> dict:
        if self.run is None:
            return {"mode": self.mode}
        return {"mode": self.mode, "project": self.settings.project, "run_id": self.run.id,
                "run_dir": str(Path(self.run.dir).parent)}

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def read_offline_records(run_dir: Path | str) -> list:
    """The protobuf records of an offline run's `run-<id>.wandb`, a LevelDB-style log (32 KiB blocks, 7-byte
    chunk headers); lets a test or an operator verify what was tracked without syncing."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = next(Path(run_dir).glob("run-*.wandb")).read_bytes()
    block, pos, pending, records = 32768, 7, b"", []  # the file starts with a 7-byte ':W&B' header
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start, MIDDLE/LAST continue
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_offline_history(run_dir: Path | str) -> list[dict]:
    """The history rows (`run.log` calls) of an offline run, as {metric: value}."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for record in read_offline_records(run_dir) if record.WhichOneof("record_type") == "history"]


def plot_loss_curves(train_history: list[dict], eval_history: list[dict], path: Path | str,
                     best_step: int | None = None, title: str = "") -> Path:
    """Train loss per logged step and eval loss per evaluation, on one axis; Agg, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    train = [(row["step"], row["loss"]) for row in train_history if "loss" in row]
    evals = [(row["step"], row["eval_loss"]) for row in eval_history]
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals), label="eval loss", color="tab:orange", marker="o", linewidth=1.5)
    if best_step is not None:
        ax.axvline(best_step, color="tab:green", linestyle="--", linewidth=1, label=f"best step {best_step}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def png_markdown(path: Path | str, alt: str = "loss curves") -> str:
    """A markdown image with the PNG inlined as a data URI, so the Dagster UI renders it from metadata."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
