"""mmedge/eval."""
