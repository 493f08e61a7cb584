"""mmedge/runtime/backends/torch."""
