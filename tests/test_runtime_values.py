"""The runtime-values transform (torch2mlx/transforms/runtime/values.py) and the module-level registrations
(rules/runtime_registrations.yaml): each case is the shape torchvision / timm have at import, converted, run
under torch and (torch blocked) under MLX, compared."""
import ast
import sys
import textwrap
import types

import pytest

from torch2mlx import convert_source


def _run(code: str, name: str, blocked: bool) -> types.ModuleType:
    module = types.ModuleType(name)
    saved = {k: sys.modules.get(k) for k in ("torch", "torch.fx", "torch.utils", "torch.utils.data")}
    try:
        if blocked:
            for k in saved:
                sys.modules[k] = None  # type: ignore[assignment]
        exec(compile(code, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our own test programs
    finally:
        if blocked:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    return module


def torch_left(code: str) -> bool:
    """An import of torch or a name `torch` in the code (docstrings saying "PyTorch's" are no use of it)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] == "torch" for n in names):
                return True
        if isinstance(node, ast.Name) and node.id == "torch":
            return True
    return False


def convert(source: str):
    source = textwrap.dedent(source)
    result = convert_source(source, "case.py")
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    return source, result, warnings


DATASETS = """
    from typing import TypeVar

    import torch
    from torch.utils import data
    from torch.utils.data import IterableDataset, Sampler


    T_co = TypeVar("T_co", covariant=True)


    class Squares(data.Dataset[T_co]):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return i * i


    class Stream(IterableDataset):
        def __init__(self, items):
            self.items = items

        def __iter__(self):
            return iter(self.items)

        def __len__(self):
            return len(self.items)


    class Evens(Sampler):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def __iter__(self):
            return iter(range(0, self.n, 2))


    class Empty(data.Dataset):
        pass


    def repeat(d, n: int) -> torch.utils.data.ConcatDataset:
        return torch.utils.data.ConcatDataset([d] * n)


    def run():
        both = Squares(3) + Squares(4)
        chained = Stream([1, 2]) + Stream([3])
        try:
            Empty()[0]
            raised = None
        except NotImplementedError as e:
            raised = str(e)
        twice = repeat(Squares(2), 2)
        return (len(twice), [twice[i] for i in range(len(twice))],
                len(both), [both[i] for i in range(len(both))], both[-1], both.cumulative_sizes,
                list(chained), len(chained), list(Evens(5)), raised, type(both).__name__.endswith("ConcatDataset")
                or type(both).__name__ == "ConcatDatasetBase")
"""


def test_data_base_classes_behave_as_torch():
    source, result, warnings = convert(DATASETS)
    assert not warnings, [d.format() for d in warnings]
    assert not torch_left(result.code)
    assert "class Squares(DatasetBase[T_co])" in result.code and "class Evens(SamplerBase)" in result.code
    expected = _run(source, "torch_side", blocked=False).run()
    actual = _run(result.code, "mlx_side", blocked=True).run()
    assert actual == expected
    assert convert_source(result.code).code == result.code


def test_isinstance_against_a_data_class_stays_flagged():
    # each converted file writes its own DatasetBase: an identity test across files would differ
    _, result, warnings = convert("""
        import torch.utils.data as data


        def is_dataset(d):
            return isinstance(d, data.Dataset)
    """)
    assert [d.rule_id for d in warnings] == ["torch.utils.data.Dataset"]


def test_a_taken_helper_name_gets_a_fresh_one():
    _, result, warnings = convert("""
        import torch.utils.data as data

        DatasetBase = 3


        class D(data.Dataset):
            pass
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "class DatasetBase_1:" in result.code and "class D(DatasetBase_1):" in result.code
    ns: dict = {}
    exec(compile(result.code, "case.py", "exec"), ns)  # noqa: S102 - the test's own program
    assert ns["DatasetBase"] == 3 and issubclass(ns["D"], ns["DatasetBase_1"])


FINAL = """
    import torch
    from torch import nn
    from torch.jit import Final


    class Attention(nn.Module):
        fused_attn: Final[bool]
        heads: torch.jit.Final[int] = 4

        def __init__(self):
            super().__init__()
            self.fused_attn = True


    def run():
        return (Attention.__annotations__["fused_attn"].__origin__.__name__ if hasattr(
            Attention.__annotations__["fused_attn"], "__origin__") else None,
            repr(Attention.__annotations__["heads"]), Attention.heads, Attention().fused_attn)
"""


def test_jit_final_is_typing_final():
    source, result, warnings = convert(FINAL)
    assert not warnings, [d.format() for d in warnings]
    assert "fused_attn: typing.Final[bool]" in result.code and "import typing" in result.code
    assert not torch_left(result.code)
    expected = _run(source, "torch_side", blocked=False).run()
    actual = _run(result.code, "mlx_side", blocked=True).run()
    assert actual == expected == ("Final", "typing.Final[int]", 4, True)
    assert convert_source(result.code).code == result.code


def test_jit_final_with_typing_rebound_is_flagged():
    _, result, warnings = convert("""
        import torch

        typing = None


        class A:
            x: torch.jit.Final[int] = 1
    """)
    assert [d.rule_id for d in warnings] == ["torch.jit.Final"]


FX_WRAP = """
    import math

    import torch
    import torch.fx


    @torch.fx.wrap
    def scaled(x, s: float):
        return x * math.sqrt(s)


    def _half(x):
        return x / 2


    torch.fx.wrap("_half")
    halved = torch.fx.wrap(_half)


    def run(x):
        return scaled(x, 4.0), halved(x), scaled.__name__
"""


def test_fx_wrap_statement_and_decorator_go():
    source, result, warnings = convert(FX_WRAP)
    assert not warnings, [d.format() for d in warnings]
    assert "wrap" not in result.code.replace("def _half", "")
    assert 'torch.fx.wrap("_half")' not in result.code and '"_half"' not in result.code
    assert "halved = _half" in result.code
    assert _run(source, "torch_side", blocked=False).run(6.0) == _run(result.code, "mlx_side", blocked=True).run(6.0)
    assert convert_source(result.code).code == result.code


@pytest.mark.parametrize("source", [
    """
    import torch.fx


    def outer():
        @torch.fx.wrap
        def inner(x):
            return x
        return inner
    """,
    """
    import torch.fx


    class A:
        @torch.fx.wrap
        def method(self):
            return 1
    """,
])
def test_fx_wrap_below_module_level_stays_flagged(source):
    # torch raises NotImplementedError("wrap must be called at the top level of a module") there
    _, result, warnings = convert(source)
    assert [d.rule_id for d in warnings] == ["torch.fx.wrap"]
    assert "@torch.fx.wrap" in result.code


REGISTRATIONS = """
    import os

    import torch
    import torch.library
    from torch.hub import _get_torch_home

    _HOME = os.path.join(_get_torch_home(), "datasets", "vision")

    _keys = (
        torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)
        | torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCUDA)
    )


    def _no_double_backward(op_name):
        def backward(ctx, *grads):
            raise RuntimeError(f"double backwards on {op_name} not supported")

        return backward


    def _autocast_twice(x):
        with torch._C._ExcludeDispatchKeyGuard(_keys):
            return torch.ops.t2m_test_reg.twice(x.float())


    _lib = torch.library.Library("t2m_test_reg", "FRAGMENT")
    _lib.define("twice(Tensor x) -> Tensor")
    _lib.impl("twice", lambda x: x * 2, "CPU")
    torch.library.register_autograd("t2m_test_reg::twice", _no_double_backward("twice"))
    for _key in ("AutocastCPU",):
        _lib.impl("twice", _autocast_twice, _key)


    def run():
        return _HOME
"""


def test_torchvision_registrations_import_without_torch(monkeypatch):
    # torchvision's _autograd_registrations.py / _internally_replaced_utils.py, in small
    monkeypatch.setenv("TORCH_HOME", "/tmp/t2m-home")
    source, result, warnings = convert(REGISTRATIONS)
    # the dispatcher guard and the torch.ops call stay flagged, inside the function that makes them
    assert {d.rule_id for d in warnings} == {"torch._C._ExcludeDispatchKeyGuard", "torch.ops.t2m_test_reg.twice",
                                            "Tensor.float"}
    infos = [d for d in result.diagnostics if d.rule_id == "torch.library.register_autograd"]
    assert infos and infos[0].severity.value == "info"
    assert "register_autograd" not in result.code and "_no_double_backward(\"twice\")\n" in result.code
    expected = _run(source, "torch_side", blocked=False).run()
    assert _run(result.code, "mlx_side", blocked=True).run() == expected == "/tmp/t2m-home/datasets/vision"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/t2m-xdg")
    assert _run(result.code, "mlx_side2", blocked=True).run() == "/tmp/t2m-xdg/torch/datasets/vision"


def test_a_torch_import_moved_into_a_try_that_catches_import_errors():
    # torchvision/extension.py: without torch, `_load_library` must report "no extension" as torch's own
    # ImportError handler does, not raise from an import placed above the try
    source = textwrap.dedent("""
        import torch


        def _get_extension_path(name):
            raise ImportError(name)


        def _load_library(lib_name):
            \"\"\"Load a library.\"\"\"
            try:
                lib_path = _get_extension_path(lib_name)
                torch.ops.load_library(lib_path)
                return True
            except (ImportError, OSError):
                return False


        def run():
            return _load_library("_C")
    """)
    result = convert_source(source, "extension.py")
    assert "try:\n        lib_path = _get_extension_path(lib_name)\n        import torch\n" in result.code
    assert _run(result.code, "mlx_side", blocked=True).run() is _run(source, "torch_side", blocked=False).run() is False


def test_a_try_that_does_not_catch_import_errors_gets_the_import_above():
    source = textwrap.dedent("""
        import torch


        def load(path):
            try:
                torch.ops.load_library(path)
            except OSError:
                return False
            return True
    """)
    result = convert_source(source, "extension.py")
    assert "def load(path):\n    import torch\n    try:" in result.code


FUNCTION_VALUES = """
    import torch
    from torch.nn import functional as F
    import torch.nn.functional

    _has_silu = 'silu' in dir(torch.nn.functional)
    _no_mish = 'mish' not in dir(F)
    interpolate = torch.nn.functional.interpolate

    _ACT = dict(silu=F.silu if _has_silu else None, mish=F.mish, relu=F.relu, relu6=F.relu6, leaky_relu=F.leaky_relu,
                elu=F.elu, celu=F.celu, selu=F.selu, gelu=F.gelu, sigmoid=F.sigmoid, tanh=F.tanh,
                hard_sigmoid=F.hardsigmoid, hard_swish=F.hardswish)


    def run(x):
        out = [fn(x) for fn in _ACT.values()]
        out += [_ACT["leaky_relu"](x, 0.3), _ACT["elu"](x, alpha=0.5), _ACT["celu"](x, 0.7),
                _ACT["gelu"](x, approximate="tanh")]
        out += [interpolate(x, scale_factor=2), interpolate(x, None, (2, 3), "bilinear", True),
                interpolate(x, size=(8, 10), mode="bilinear"), interpolate(x, size=(12, 15), mode="nearest-exact")]
        return out, _no_mish
"""


def test_torch_functions_as_values_behave_as_torch():
    # timm's create_act.py tables and torchvision's ops/misc.py `interpolate = torch.nn.functional.interpolate`
    import mlx.core as mx
    import numpy as np
    import torch

    source, result, warnings = convert(FUNCTION_VALUES)
    assert not warnings, [d.format() for d in warnings]
    assert not torch_left(result.code)
    x = np.random.RandomState(0).randn(2, 3, 4, 5).astype(np.float32) * 3
    expected, flag = _run(source, "torch_side", blocked=False).run(torch.from_numpy(x))
    mlx_side = _run(result.code, "mlx_side", blocked=True)
    actual, mlx_flag = mlx_side.run(mx.array(x))
    assert flag is mlx_flag is False and len(actual) == len(expected) == 21
    for e, a in zip(expected, actual):
        assert e.shape == a.shape
        np.testing.assert_allclose(np.array(a), e.numpy(), rtol=1e-4, atol=1e-5)
    # what MLX cannot do raises instead of computing something else
    with pytest.raises(NotImplementedError):
        mlx_side.interpolate(mx.array(x), scale_factor=1.5)
    with pytest.raises(NotImplementedError):
        mlx_side.interpolate(mx.array(x), size=(7, 7))
    with pytest.raises(NotImplementedError):
        mlx_side._ACT["relu"](mx.array(x), inplace=True)
    with pytest.raises(ValueError):
        mlx_side._ACT["gelu"](mx.array(x), approximate="erf")
    assert convert_source(result.code).code == result.code


def test_unknown_functional_name_and_untranslated_values_stay_flagged():
    _, result, warnings = convert("""
        import torch.nn.functional as F

        _has_weird = 'weird' in dir(F)
        pool = F.max_pool2d
    """)
    assert {d.rule_id for d in warnings} == {"torch.nn.functional", "torch.nn.functional.max_pool2d"}


def test_torch_assert_statement_is_an_assert():
    import mlx.core as mx
    import numpy as np
    import torch

    source, result, warnings = convert("""
        import torch


        def check(x: torch.Tensor):
            torch._assert(x.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {x.ndim}")
            y = x.clone()
            y.mul_(2)  # the in-place transforms hook every expression statement too
            torch._assert(
                y.dim() == 3,
                "All bounding boxes should have positive height and width."
                f" Found invalid box {y.ndim}.",
            )
            return y
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "    assert x.ndim == 3, f\"Expected" in result.code
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(np.array(_run(result.code, "mlx_side", blocked=True).check(mx.array(x))),
                                  _run(source, "torch_side", blocked=False).check(torch.from_numpy(x)).numpy())
    with pytest.raises(AssertionError, match="got 2"):
        _run(result.code, "mlx_side", blocked=True).check(mx.ones((2, 3)))
    _, result, warnings = convert("""
        import torch


        def check(x):
            ok = torch._assert(x.dim() == 3, "3-D")
            return ok
    """)
    assert [d.rule_id for d in warnings] == ["torch._assert"]


PROBES = """
    import torch
    import torch.nn.functional as F


    def nullwrap(fn=None):
        return fn


    _HAS_COMPILER_IS_EXPORTING = hasattr(torch, 'compiler') and hasattr(torch.compiler, 'is_exporting')
    _HAS_FUSED_ATTN = hasattr(torch.nn.functional, 'scaled_dot_product_attention')
    has_rms_norm = hasattr(F, 'rms_norm')
    disable_compiler = getattr(getattr(torch, "compiler", None), "disable", None) or nullwrap


    @disable_compiler
    def f(x):
        if _HAS_COMPILER_IS_EXPORTING and torch.compiler.is_exporting():
            return x
        return x + 1


    @disable_compiler(recursive=False)
    def g(x):
        return x * 2


    def run(x):
        return f(x), g(x), _HAS_COMPILER_IS_EXPORTING, _HAS_FUSED_ATTN, has_rms_norm
"""


def test_feature_probes_of_torch_2():
    # timm's layers/helpers.py, typing.py, config.py, fast_norm.py: what torch 2.13 answers
    source, result, warnings = convert(PROBES)
    assert not warnings, [d.format() for d in warnings]
    assert not torch_left(result.code)
    assert _run(result.code, "mlx_side", blocked=True).run(3.0) == _run(source, "torch_side", blocked=False).run(3.0)
    assert convert_source(result.code).code == result.code


def test_a_probe_for_what_torch_lacks_stays_flagged():
    _, result, warnings = convert("""
        import torch

        _weird = hasattr(torch, 'nonexistent_thing')
        other = getattr(torch, 'nonexistent_thing', None)
    """)
    assert len(warnings) == 2 and "hasattr(torch, 'nonexistent_thing')" in result.code


def test_a_moved_torch_import_goes_above_the_first_statement_that_uses_it():
    # torchvision/extension.py's _check_cuda_version(), called at import: `if not _has_ops(): return -1` first
    source = textwrap.dedent("""
        import torch


        def _has_ops():
            return False


        def _check_cuda_version():
            '''Compare CUDA versions.'''
            if not _has_ops():
                return -1
            # the version of the extension
            _version = torch.ops.torchvision._cuda_version()
            return _version


        VERSION = _check_cuda_version()
    """)
    result = convert_source(source, "extension.py")
    assert "        return -1\n    import torch\n    # the version of the extension\n" in result.code
    assert _run(result.code, "mlx_side", blocked=True).VERSION == -1


def test_reexported_torch_import_choice_becomes_a_function_that_imports_torch_when_called(tmp_path):
    # torchvision/_internally_replaced_utils.py re-exports load_state_dict_from_url to models/_api.py: the emitter
    # dropped the unused imports, and _api.py failed at import with no flag anywhere. That name now has a local
    # helper (tests/test_tvhub_checkpoint.py); a torch function with none (set_dir) still becomes a
    # function importing it from torch
    import subprocess

    src = tmp_path / "src" / "pkg"
    (src / "models").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "models" / "__init__.py").write_text("")
    (src / "_utils.py").write_text(textwrap.dedent("""
        import os

        try:
            from torch.hub import set_dir  # noqa: 401
        except ImportError:
            from torch.hub import set_dir  # noqa: 401
    """))
    (src / "models" / "_api.py").write_text(textwrap.dedent("""
        from .._utils import set_dir


        def get_state_dict(url):
            return set_dir(url)
    """))
    out = tmp_path / "out" / "pkg"
    done = subprocess.run([sys.executable, "-m", "torch2mlx", "convert", str(src), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr  # flagged: a call needs torch
    code = (out / "_utils.py").read_text()
    assert "def set_dir(*args, **kwargs):\n    from torch.hub import set_dir\n" in code
    assert "# torch2mlx: torch.hub.set_dir:" in code
    probe = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); import pkg.models._api as a\n"
             "try:\n    a.get_state_dict('u')\nexcept ImportError:\n    print('needs torch')\n")
    ran = subprocess.run([sys.executable, "-c", probe, str(out.parent)], capture_output=True, text=True)
    assert ran.stdout.strip() == "needs torch", ran.stderr
    assert convert_source(code, "_utils.py").code == code


def test_a_torch_import_choice_used_in_its_file_is_left_to_the_usual_flags():
    _, result, _ = convert("""
        try:
            from torch.hub import load_state_dict_from_url
        except ImportError:
            from torch.utils.model_zoo import load_url as load_state_dict_from_url


        def get(url):
            return load_state_dict_from_url(url)
    """)
    assert "def load_state_dict_from_url" not in result.code


def test_register_fake_decorator_goes_at_module_level_only():
    source, result, warnings = convert("""
        import torch
        import torch.library


        @torch.library.register_fake("torchvision::nms")
        def meta_nms(dets, scores, iou_threshold):
            torch._check(dets.dim() == 2, lambda: "boxes should be a 2d tensor")
            return dets


        def outer():
            @torch.library.register_fake("torchvision::qnms")
            def inner(x):
                return x
            return inner
    """)
    assert '@torch.library.register_fake("torchvision::nms")' not in result.code
    assert "def meta_nms(dets, scores, iou_threshold):" in result.code
    assert '@torch.library.register_fake("torchvision::qnms")' in result.code
    # torch._check translates since 5187e29 (a check raising RuntimeError as torch does)
    assert {d.rule_id for d in warnings} == {"torch.library.register_fake"}
    assert "torch._check" not in result.code
    assert any(d.rule_id == "torch.library.register_fake" and d.severity.value == "info" for d in result.diagnostics)


def test_a_torch_import_goes_into_the_branch_of_a_nested_def_that_alone_uses_it():
    # torchvision/_meta_registrations.py: decorators made by register_meta run at import; its wrapper touches
    # torch only `if torchvision.extension._has_ops()`
    source = textwrap.dedent("""
        import torch


        def _has_ops():
            return False


        def register_meta(op_name, overload_name="default"):
            \"\"\"A decorator.\"\"\"
            def wrapper(fn):
                if _has_ops():
                    # register it
                    torch.library.Library("torchvision", "IMPL").impl(getattr(torch.ops.torchvision, op_name), fn)
                return fn

            return wrapper


        @register_meta("roi_align")
        def meta_roi_align(x):
            return torch.empty(0)
    """)
    result = convert_source(source, "_meta_registrations.py")
    assert "        if _has_ops():\n            import torch\n            # register it\n" in result.code
    module = _run(result.code, "mlx_side", blocked=True)
    assert module.meta_roi_align.__name__ == "meta_roi_align"


def test_a_def_inside_a_skipped_module_level_if_does_not_shift_later_scopes():
    # torchvision/io/image.py: `if _load_library("image"): def _has_image_ops(): ...` mentions no torch, so the pass
    # skips it; its def was not counted, and every later def got the scope of the one before (read_file's
    # `-> torch.Tensor` and body were left unconverted, flagged torch-reference)
    _, result, warnings = convert("""
        import torch


        def a():
            return 1


        if a():

            def b():
                return 2

            class C:
                pass


        def c(x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x)
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "def c(x: mx.array) -> mx.array:\n    return nn.relu(x)" in result.code


def test_a_nested_import_of_a_torch_submodule_does_not_keep_torch_at_module_level():
    # torchvision/datasets/video_utils.py: `import torch.utils.data` inside a method binds `torch` to torch again
    from torch2mlx.importable import localize_torch_imports

    code = textwrap.dedent("""
        import torch


        def load(paths):
            import torch.utils.data

            return torch.utils.data.DataLoader(paths)


        def clips(x):
            return torch.as_tensor(x)
    """)
    moved = localize_torch_imports(code)
    assert not moved.lstrip().startswith("import torch")
    assert "def clips(x):\n    import torch\n    return torch.as_tensor(x)" in moved
    _run(moved, "mlx_side", blocked=True)  # imports without torch
    assert localize_torch_imports(code.replace("import torch.utils.data", "import torch.utils.data as torch")) != moved


def test_an_import_of_another_files_torch_alias_moves_with_its_uses(tmp_path):
    # torchvision/datasets/video_utils.py: `from .utils import tqdm`, utils.py having `from torch.utils.model_zoo
    # import tqdm` (moved into utils' function that uses it): video_utils failed at import
    import subprocess

    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "utils.py").write_text("from torch.utils.model_zoo import tqdm\n\n\ndef download(n):\n"
                                  "    with tqdm(total=n) as bar:\n        bar.update(n)\n    return n\n")
    (src / "video.py").write_text("from .utils import tqdm\n\n\ndef progress(n):\n    return tqdm(total=n)\n\n\nVALUE = 3\n")
    out = tmp_path / "out" / "pkg"
    subprocess.run([sys.executable, "-m", "torch2mlx", "convert", str(src), "-o", str(out)], capture_output=True)
    assert (out / "video.py").read_text().startswith("def progress(n):\n    from .utils import tqdm\n")
    probe = "import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); import pkg.video as v; print(v.VALUE)"
    ran = subprocess.run([sys.executable, "-c", probe, str(out.parent)], capture_output=True, text=True)
    assert ran.stdout.strip() == "3", ran.stderr


def test_script_if_tracing_decorator_goes():
    # torchvision/ops/boxes.py: @torch.jit._script_if_tracing on module-level helpers
    source, result, warnings = convert("""
        import torch


        @torch.jit._script_if_tracing
        def _batched(x, k: int):
            return x * k


        def run(x):
            return _batched(x, 3)
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "script_if_tracing" not in result.code
    assert _run(result.code, "mlx_side", blocked=True).run(2) == _run(source, "torch_side", blocked=False).run(2) == 6


def test_overload_method_stubs_lose_their_decorator():
    # torchvision/models/densenet.py: @torch.jit._overload_method stubs before the real forward
    source, result, warnings = convert("""
        import torch


        class Layer:
            @torch.jit._overload_method  # noqa: F811
            def forward(self, input: list) -> int:
                pass

            @torch.jit._overload_method  # noqa: F811
            def forward(self, input: int) -> int:
                pass

            def forward(self, input):  # noqa: F811
                return input if isinstance(input, int) else len(input)


        def run():
            return Layer().forward([1, 2]), Layer().forward(5)
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "_overload_method" not in result.code
    assert _run(result.code, "mlx_side", blocked=True).run() == _run(source, "torch_side", blocked=False).run() == (2, 5)


def test_module_list_annotation_is_list():
    # torchvision/models/detection/ssd.py: `def __init__(self, module_list: nn.ModuleList, ...)` runs at import
    _, result, warnings = convert("""
        from torch import nn


        def count(module_list: nn.ModuleList, columns: int) -> int:
            return len(module_list) * columns
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "def count(module_list: list, columns: int) -> int:" in result.code and not torch_left(result.code)


def test_a_moved_import_never_goes_above_an_elif():
    # torchvision/models/optical_flow/raft.py: the only torch use is in an `elif` test
    from torch2mlx.importable import localize_torch_imports

    code = textwrap.dedent("""
        import torch


        def init(m):
            if isinstance(m, int):
                m = 0
            elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)):
                m = 1
            return m
    """)
    moved = localize_torch_imports(code)
    ast.parse(moved)
    assert "def init(m):\n    import torch\n    if isinstance(m, int):" in moved


def test_jit_annotations_typing_names():
    # timm/models/densenet.py: `from torch.jit.annotations import List`, used in signatures run at import
    source, result, warnings = convert("""
        from torch.jit.annotations import List, Optional


        def concat(xs: List[int], extra: Optional[int] = None) -> List[int]:
            return xs + ([extra] if extra is not None else [])


        def run():
            return concat([1, 2], 3), concat.__annotations__["xs"] == List[int]
    """)
    assert not warnings, [d.format() for d in warnings]
    assert "def concat(xs: typing.List[int], extra: typing.Optional[int] = None) -> typing.List[int]:" in result.code
    assert _run(result.code, "mlx_side", blocked=True).run() == _run(source, "torch_side", blocked=False).run()
