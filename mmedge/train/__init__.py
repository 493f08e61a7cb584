"""Fine-tuning loop, modes, checkpoints (imports torch)."""
