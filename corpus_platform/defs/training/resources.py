"""Training configuration: the seeds' LoRA defaults, editable in the launchpad."""

import dagster as dg

from corpus_platform.training.lora import LoraTrainingConfig

EMBEDDED_BASE_MODEL = "embedded:smollm2"


class TrainingSettings(dg.ConfigurableResource):
    base_model: str = EMBEDDED_BASE_MODEL  # embedded:smollm2 | a local HF directory | a hub id (online only)
    rank: int = 16
    alpha: int = 16
    dropout: float = 0.1
    learning_rate: float = 2e-4
    num_epochs: float = 2.0
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_seq_len: int = 512
    eval_steps: int = 50
    max_steps: int = -1  # -1: train num_epochs; the demo caps steps to fit minutes on 2 CPU cores
    eval_batch_size: int = 4
    retrain_min_new_rows: int = 200  # new scored rows since the last adapter that trigger retraining

    def lora_config(self) -> LoraTrainingConfig:
        return LoraTrainingConfig(
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            num_epochs=self.num_epochs,
            per_device_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_seq_len=self.max_seq_len,
            eval_steps=self.eval_steps,
            max_steps=self.max_steps,
        )
