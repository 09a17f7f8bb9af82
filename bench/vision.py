"""The one place that imports torchvision (and torch-fidelity, which imports it).

PyPI's torchvision wheels are CUDA builds; over a CPU-only torch their compiled operators cannot
load and `import torchvision` fails with "operator torchvision::nms does not exist". Only the
pure-Python parts (datasets, transforms, models) are used here, so when the compiled library is
missing the two operator schemas torchvision's Python code registers fakes for are defined first.
Always import torchvision and torch_fidelity through this module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None


def _operator_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def ensure_operator_schemas() -> list[str]:
    """Define the torchvision operator schemas that are missing; returns the names defined."""
    global _library
    missing = [name for name in _SCHEMAS if not _operator_exists(name)]
    if missing:
        if _library is None:
            _library = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 kept alive
        for name in missing:
            _library.define(_SCHEMAS[name])
    return missing


def torchvision() -> ModuleType:
    """`import torchvision`, usable whether or not its compiled operators load."""
    ensure_operator_schemas()
    return importlib.import_module("torchvision")


def torch_fidelity() -> ModuleType:
    """`import torch_fidelity` (which imports torchvision) through the same guard."""
    ensure_operator_schemas()
    return importlib.import_module("torch_fidelity")
