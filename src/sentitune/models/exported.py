"""The exported-file layout of a model folder: where each backend's graph lives and which of them can run here.
Both `inference.export` (which writes them) and `inference.predict` (which reads them) take it from here.
"""

from __future__ import annotations

from pathlib import Path

from ..core.extras import installed, require

ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_quantized.onnx"}
OPENVINO_FILE = Path("openvino") / "openvino_model.xml"  # beside it openvino_model.bin, the weights
# backend -> (the extra that installs its runtime, the runtime's module)
RUNTIME_OF = {"onnx": ("export", "onnxruntime"), "onnx-int8": ("export", "onnxruntime"),
              "openvino": ("openvino", "openvino")}


def onnx_path(model_dir: str | Path, backend: str) -> Path:
    """Where `backend`'s graph lives in a model folder."""
    return Path(model_dir) / (OPENVINO_FILE if backend == "openvino" else Path("onnx") / ONNX_FILES[backend])


def exported_backends(model_dir: str | Path) -> set[str]:
    """The exported backends a model folder can run here: its ONNX graphs when onnxruntime is installed, and its
    OpenVINO model when the package openvino is."""
    return {backend for backend in [*ONNX_FILES, "openvino"]
            if onnx_path(model_dir, backend).is_file() and installed(RUNTIME_OF[backend][1])}


def openvino_installed() -> bool:
    """Whether `sentitune export` can write the OpenVINO model here (its default backends)."""
    return installed("openvino")


def require_runtime(backend: str, what: str) -> None:
    """One line saying which extra to install when `backend`'s runtime is missing, for `what` (a flag) needing it."""
    require(*RUNTIME_OF[backend], what=what)
