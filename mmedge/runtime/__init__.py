"""mmedge/runtime."""
