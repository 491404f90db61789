"""The robot runtime: what runs beside the arm (numpy, onnxruntime or TensorRT; no torch)."""
