"""The "onnxruntime-cuda" and "onnxruntime-trt" backends: ONNX Runtime's GPU providers (loader.py, runner.py)."""
