"""Optional features and the one line that says how to install a missing one.

The core install (`pip install sentitune`) runs the main job, train, evaluate, predict and report. Serving,
ONNX export, tuning, Ray batch scoring, OpenVINO, TensorBoard events and `present --video` need an extra each,
declared in pyproject.toml's [project.optional-dependencies]. Code that imports one of those packages calls `require`
first, so that a missing extra is one line, e.g.
`sentitune serve: needs fastapi and uvicorn; pip install 'sentitune[serve]'.`, not a traceback.
"""

from __future__ import annotations

import importlib.util

from .errors import SentituneError

# extra -> the modules it brings (import names), as pyproject.toml declares the extra's packages
EXTRAS = {
    "serve": ("fastapi", "uvicorn"),
    "export": ("onnx", "onnxruntime"),
    "tune": ("optuna", "sqlalchemy"),
    "ray": ("ray",),
    "openvino": ("openvino",),
    "tensorboard": ("tensorboard",),
    "video": ("playwright",),
}


def missing(*modules: str) -> list[str]:
    """The modules of `modules` that cannot be imported here (not installed, or blocked in sys.modules)."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a dotted name whose parent is missing, or a module without a spec
            found = False
        if not found:
            absent.append(name)
    return absent


def installed(*modules: str) -> bool:
    """Whether every module of `modules` can be imported here."""
    return not missing(*modules)


def install_hint(extra: str) -> str:
    """The pip command that installs `extra`."""
    return f"pip install 'sentitune[{extra}]'"


def require(extra: str, *modules: str, what: str) -> None:
    """Raise the one-line SentituneError naming the pip command when a module of `extra` (all of the extra's modules,
    or just `modules`) is missing; `what` is the command or flag that needs it."""
    absent = missing(*(modules or EXTRAS[extra]))
    if absent:
        names = " and ".join([", ".join(absent[:-1]), absent[-1]] if len(absent) > 1 else absent)
        raise SentituneError(f"{what}: needs {names}; {install_hint(extra)}.")
