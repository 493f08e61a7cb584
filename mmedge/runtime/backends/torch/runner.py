"""PyTorch eager runner (the fp32 reference), over one component's nn.Module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec

if TYPE_CHECKING:
    import torch


class TorchRunner(Runner):
    """Runs one component's nn.Module in eval mode under inference_mode."""

    def __init__(self, module: torch.nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 name: str, device: str = "cpu", compile: bool = False) -> None:
        super().__init__(f"torch:{name}", inputs, outputs)
        self.module, self.device_name, self.compile = module, device, compile
        self._call: Any = None

    def _activate(self) -> None:
        import torch

        self.device = torch.device(self.device_name)
        self.module = self.module.to(self.device).eval()
        self._call = torch.compile(self.module) if self.compile else self.module

    def _deactivate(self) -> None:
        self._call = None

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.asarray(feed[s.name])).to(self.device) for s in self.inputs]
            out = self._call(*args)
        return {self.outputs[0].name: out.float().cpu().numpy()}
