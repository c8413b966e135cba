"""Deployment: ONNX export (export.py), runners for ONNX Runtime (onnxruntime.py) and TensorRT
(tensorrt.py) behind one interface (runtime.py), the fit-to-engine shape policy (engine_io.py) and the
PyTorch-vs-deploy drift report (drift.py). See docs/deploy.md."""
