"""mmedge: multimodal classifiers from PyTorch fine-tuning to measured edge inference.

`import mmedge` stays light: torch, onnxruntime, tensorrt and cuda are imported lazily
inside the modules that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmedge.errors import MmedgeError

__version__ = "0.1.0"
__all__ = ["MmedgeError", "Pipeline", "__version__"]

if TYPE_CHECKING:
    from mmedge.runtime.pipeline import Pipeline


def __getattr__(name: str) -> Any:
    """Import `Pipeline` lazily so that `import mmedge` pulls no runtime backend."""
    if name == "Pipeline":
        from mmedge.runtime.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'mmedge' has no attribute {name!r}")
