"""PyTorch models: per-modality encoders, fusion ops, the fusion head, presets (imports torch)."""
