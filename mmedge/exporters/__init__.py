"""torch → ONNX per component, validation against torch, fp16 and int8 (QDQ) passes."""
