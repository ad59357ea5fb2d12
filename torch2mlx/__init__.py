"""torch2mlx: translate PyTorch programs into native MLX programs."""
from torch2mlx.api import ConversionResult, convert_source, decode_source
from torch2mlx.diagnostics import Diagnostic, InputError, Kind, Severity
from torch2mlx.version import __version__

__all__ = ["convert_source", "decode_source", "ConversionResult", "Diagnostic", "InputError", "Kind", "Severity", "__version__"]

_WEIGHTS = ("LoadReport", "WeightLoadError", "load_torch_weights")  # public API, in torch2mlx.weights (numpy)


def __getattr__(name: str):
    """`torch2mlx.load_torch_weights` & co. import `torch2mlx.weights` (and numpy) on first use only."""
    if name in _WEIGHTS:
        from torch2mlx import weights

        return getattr(weights, name)
    raise AttributeError(f"module 'torch2mlx' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_WEIGHTS))
