"""The exported-file layout of a model folder: where each backend's graph lives and which of them can run here.
Both `inference.export` (which writes them) and `inference.predict` (which reads them) take it from here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..core.errors import SentituneError

ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_quantized.onnx"}
OPENVINO_FILE = Path("openvino") / "openvino_model.xml"  # beside it openvino_model.bin, the weights


def onnx_path(model_dir: str | Path, backend: str) -> Path:
    """Where `backend`'s graph lives in a model folder."""
    return Path(model_dir) / (OPENVINO_FILE if backend == "openvino" else Path("onnx") / ONNX_FILES[backend])


def exported_backends(model_dir: str | Path) -> set[str]:
    """The exported backends a model folder can run here: its ONNX graphs, and its OpenVINO model when the package
    openvino is installed."""
    found = {backend for backend in [*ONNX_FILES, "openvino"] if onnx_path(model_dir, backend).is_file()}
    return found if openvino_installed() else found - {"openvino"}


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino(what: str) -> None:
    """One line saying how to install openvino, for `what` (a flag) needing it."""
    if not openvino_installed():
        raise SentituneError(f"{what}: needs the package openvino; pip install 'sentitune[openvino]'.")
