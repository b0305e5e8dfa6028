"""corpus_platform: raw conversations and scrapes in, curated datasets and LoRA adapters out."""

__version__ = "0.1.0"
