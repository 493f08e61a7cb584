"""The "onnxruntime" backend: ONNX Runtime on the CPU (loader.py builds runners, runner.py runs them)."""
