"""The "torch" backend: the fp32 PyTorch reference stored in the bundle (loader.py, runner.py)."""
