"""torch2mlx: translate PyTorch programs into native MLX programs."""
from torch2mlx.api import ConversionResult, convert_source, decode_source
from torch2mlx.diagnostics import Diagnostic, InputError, Kind, Severity
from torch2mlx.weights import LoadReport, WeightLoadError, load_torch_weights  # noqa: F401 - public API

__version__ = "0.1.0"
__all__ = ["convert_source", "decode_source", "ConversionResult", "Diagnostic", "InputError", "Kind", "Severity", "__version__"]
