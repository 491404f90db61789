"""Checkpoint -> engine: `config` (ExportConfig, torch-free) and `onnx` (the export, torch + onnx)."""
