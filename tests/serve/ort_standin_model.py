"""Test stand-in for Triton's onnxruntime backend (PyTriton's bundled server ships only the Python backend).

Copied as model.py next to a repository's model.onnx: runs it with ONNX Runtime on CPU, one request at a
time, with the inputs and outputs its config.pbtxt names. Only the backend is stood in: the configs, the
ensemble scheduling and the preprocessing model are Triton's and mmedge's own.
"""

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        model = Path(args["model_repository"]) / str(args["model_version"]) / "model.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs}
            values = self.session.run(self.outputs, feed)
            tensors = [pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values, strict=True)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
