"""Optional torch-only dependencies met at import: apex behind `except ImportError` takes the file's own fallback
(transforms/runtime/optional_deps.py), safetensors.torch's file functions become MLX's (safetensors_io.py).
Minimal forms of timm's layers/fast_norm.py, utils/cuda.py and models/_helpers.py."""
import textwrap

from torch2mlx import convert_source


def convert(code: str):
    return convert_source(textwrap.dedent(code).lstrip("\n"), "m.py")


def warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def run(code: str) -> dict:
    """Executes converted code where neither torch nor apex can be imported."""
    import builtins

    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.split(".")[0] in ("torch", "apex", "safetensors"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    namespace: dict = {"__builtins__": {**vars(builtins), "__import__": guarded}}
    exec(compile(code, "m.py", "exec"), namespace)
    return namespace


FAST_NORM = """
import torch

try:
    from apex.normalization.fused_layer_norm import fused_layer_norm_affine
    has_apex = True
except ImportError:
    has_apex = False


def norm(x: torch.Tensor):
    return torch.relu(x)
"""


def test_apex_behind_import_error_takes_the_fallback():
    result = convert(FAST_NORM)
    assert not warnings(result), result.code
    assert "import apex" not in result.code and "from apex" not in result.code
    assert any(d.rule_id == "optional-torch-deps" and d.severity.value == "info" for d in result.diagnostics)
    assert run(result.code)["has_apex"] is False
    assert convert_source(result.code, "m.py").code == result.code


def test_a_named_exception_or_a_later_import_gets_the_raise_python_would():
    result = convert("""
        import torch
        import os

        try:
            path = os.sep
            from apex import amp
            has_apex = True
        except (AttributeError, ModuleNotFoundError) as e:
            amp = None
            has_apex = type(e).__name__
    """)
    assert not warnings(result), result.code
    assert "raise ModuleNotFoundError" in result.code
    namespace = run(result.code)
    assert namespace["has_apex"] == "ModuleNotFoundError" and namespace["amp"] is None and namespace["path"] == "/"


def test_inside_a_function_too():
    result = convert("""
        import torch


        def probe(x: torch.Tensor):
            try:
                import xformers.ops
                fused = True
            except Exception:
                fused = False
            return torch.relu(x), fused
    """)
    assert not warnings(result), result.code
    assert "import xformers" not in result.code
    assert "fused = False" in result.code


def test_left_flagged_where_the_handler_cannot_be_read_or_does_not_catch_it():
    for handler in ("MyError", "AttributeError", "(OSError, ValueError)"):
        result = convert(f"""
            import torch

            try:
                import apex
            except {handler}:
                apex = None
        """)
        assert any(d.rule_id == "torch-dependency" for d in result.diagnostics), (handler, result.code)
        assert "import apex" in result.code


def test_an_earlier_handler_that_catches_it_runs_first():
    # ImportError comes first: Python runs that handler, not the bare except after it
    result = convert("""
        import torch

        try:
            import apex
        except ImportError:
            which = "import"
        except:
            which = "bare"
    """)
    assert run(result.code)["which"] == "import"


def test_a_model_library_is_not_taken_for_a_kernel_package():
    # torchvision may be converted alongside (a directory run): its import may be the converted project
    result = convert("""
        import torch

        try:
            from torchvision.ops import nms
            has_tv = True
        except ImportError:
            has_tv = False
    """)
    assert any(d.rule_id == "torch-dependency" for d in result.diagnostics)
    assert "from torchvision.ops import nms" in result.code


HELPERS = """
import torch

try:
    import safetensors.torch

    _has_safetensors = True
except ImportError:
    _has_safetensors = False


def load_state_dict(checkpoint_path, device="cpu"):
    if str(checkpoint_path).endswith(".safetensors"):
        assert _has_safetensors, "`pip install safetensors` to use .safetensors"
        return safetensors.torch.load_file(checkpoint_path, device=device)
    return None


def save(tensors, path):
    safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
"""


def test_safetensors_import_goes_once_every_use_is_mlx(tmp_path):
    result = convert(HELPERS)
    assert not warnings(result), result.code
    assert "import safetensors" not in result.code
    namespace = run(result.code)
    assert namespace["_has_safetensors"] is True
    import mlx.core as mx

    path = str(tmp_path / "w.safetensors")
    namespace["save"]({"b": mx.arange(3), "a": mx.ones((2, 2))}, path)
    loaded = namespace["load_state_dict"](path)
    import safetensors.torch

    expected = safetensors.torch.load_file(path)
    assert list(loaded) == list(expected)
    for name, tensor in expected.items():
        assert loaded[name].tolist() == tensor.tolist()
    assert convert_source(result.code, "m.py").code == result.code


def test_safetensors_import_stays_where_a_use_has_no_rule():
    result = convert(HELPERS + """

def from_bytes(data):
    return safetensors.torch.load(data)
""")
    assert any(d.rule_id == "torch-dependency" for d in result.diagnostics), result.code
    assert "import safetensors.torch" in result.code
