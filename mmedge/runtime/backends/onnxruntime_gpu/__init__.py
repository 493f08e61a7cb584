"""mmedge/runtime/backends/onnxruntime_gpu."""
