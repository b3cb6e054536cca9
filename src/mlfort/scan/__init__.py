"""Scanners: model files (pickle, PyTorch, joblib, NumPy, Keras, ONNX, safetensors, GGUF), dependencies
(`scan.deps`), secrets (`scan.secrets`) and PII in datasets (`scan.pii`). Each returns Findings; nothing scanned is
ever loaded or executed."""
