"""Format handlers; importing this package registers every one of them with `mlfort.scan.dispatch`."""

from mlfort.scan.formats import (  # noqa: F401 - imported to register
    archives,
    compressed,
    gguf,
    hdf5,
    keras,
    numpy_files,
    onnx,
    pickles,
    safetensors,
)
