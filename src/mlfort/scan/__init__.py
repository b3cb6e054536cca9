"""Scanners: model files (pickle, PyTorch, joblib, NumPy, Keras, ONNX, safetensors, GGUF) and, later, dependencies,
secrets and PII. Each yields Findings; nothing scanned is ever loaded or executed."""
