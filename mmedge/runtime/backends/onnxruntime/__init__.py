"""mmedge/runtime/backends/onnxruntime."""
