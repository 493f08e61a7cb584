"""mmedge/runtime/backends."""
