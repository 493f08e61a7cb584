"""The "openvino" backend: OpenVINO's CPU plugin on the bundle's ONNX graphs (a peer to compare with)."""
