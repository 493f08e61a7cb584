"""mmedge/quantize."""
