"""TensorRT backend: engine build + cache (build.py, cache.py), streamed runner, CUDA layer.

Importing this package imports neither `tensorrt` nor any CUDA binding; those load inside the
functions that need them, so `import mmedge` stays light and CPU-only machines can use the
cache/sidecar logic (and its tests).
"""

from __future__ import annotations
