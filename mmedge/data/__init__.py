"""Datasets (built-in `digits`, JSONL/CSV manifests) and torch-free preprocessing."""
