"""Distillation: the distilled_examples asset and its settings resource."""
