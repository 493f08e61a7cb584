"""mmedge/runtime/cuda."""
