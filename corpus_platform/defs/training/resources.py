"""Training and evaluation configuration: the seeds' LoRA defaults and the gates' thresholds, editable in
the launchpad."""

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
    logging_steps: int = 1
    early_stopping_patience: int = 3  # evaluations without an eval-loss improvement before stopping; 0 = off
    early_stopping_threshold: float = 0.01  # smallest eval-loss decrease that counts as an improvement
    save_total_limit: int = 3
    quantization: str = "auto"  # auto: QLoRA (4-bit NF4) when CUDA is present | none | nf4
    wandb_enabled: bool = True  # offline unless WANDB_API_KEY is set and WANDB_MODE is not offline
    wandb_project: str = "corpus-platform"
    max_train_eval_gap: float = 0.3  # eval loss - train loss above this fails the overfitting check
    eval_batch_size: int = 4
    eval_max_new_tokens: int = 64  # greedy generation length for the test prompts
    judge_base_url: str = ""  # an OpenAI-compatible endpoint (…/v1); empty: no LLM judge
    judge_model: str = "gpt-4o-mini"
    judge_api_key: str | None = None  # e.g. dg.EnvVar("JUDGE_API_KEY"); falls back to $JUDGE_API_KEY
    promotion_max_p: float = 0.05
    promotion_min_d: float = 0.3  # Cohen's d in the improving direction
    bootstrap_resamples: int = 10_000
    stats_seed: int = 0
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
            logging_steps=self.logging_steps,
            early_stopping_patience=self.early_stopping_patience,
            early_stopping_threshold=self.early_stopping_threshold,
            save_total_limit=self.save_total_limit,
            quantization=self.quantization,
        )
