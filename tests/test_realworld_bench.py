"""bench/realworld.py's own machinery: the torch-blocking import hook, and which flags count for a model."""
import subprocess
import sys
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import realworld  # noqa: E402


def test_torch_is_blocked_and_the_converted_tree_comes_first(tmp_path):
    (tmp_path / "torchvision" / "models").mkdir(parents=True)
    (tmp_path / "torchvision" / "__init__.py").write_text("CONVERTED = True\n")
    (tmp_path / "torchvision" / "models" / "__init__.py").write_text("from .net import NAME\n")
    (tmp_path / "torchvision" / "models" / "net.py").write_text("NAME = 'net'\n")
    script = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.insert(0, {str(BENCH)!r})
        import realworld
        realworld.block_torch({str(tmp_path)!r})
        for name in ("torch", "torch.nn", "timm"):
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                raise SystemExit(name + " imported")
        assert importlib.util.find_spec("torch") is None  # looks uninstalled (transformers asks so)
        import torchvision, torchvision.models
        assert torchvision.CONVERTED and torchvision.models.NAME == "net"
        assert torchvision.__file__.startswith({str(tmp_path)!r})
        print("ok")
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_flags_count_where_the_model_ran(tmp_path):
    source = textwrap.dedent("""\
        import torch                       # 1: module level: at import
        class Used(torch.nn.Module):       # 2: class line of a class whose method ran
            def __init__(self):            # 3
                x = 1                      # 4: a statement that ran, in a function that ran
                if x > 1:                  # 5: ran (the test)
                    y = (x,                # 6: a branch the model never took: not counted
                         x)                # 7
        class Unused(torch.nn.ModuleDict): # 8: class line, no method ran: about using it, not counted
            def forward(self, x):          # 9
                return x                   # 10: a function that did not run: ignored
        @torch.library.register_fake("x") # 11: a decorator runs at import, though its function never ran
        def meta(x=torch.float32):         # 12: a def header never used: not counted (an import it broke would show)
            return x                       # 13: ignored
        """)
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "m.py").write_text(source)
    diags = [{"rule_id": f"r{line}", "message": "m", "line": line, "severity": "warning"}
             for line in (1, 2, 4, 5, 7, 8, 10, 11, 12, 13)]
    report = {"files": [{"path": "src/pkg/m.py", "diagnostics": diags}]}
    meta = {"ran": {"pkg/m.py": [3]}, "lines": {"pkg/m.py": [4, 5]}, "imported": ["pkg/m.py"]}
    found, at_import = realworld.model_flags(meta, report, tmp_path, {})
    assert [f[0] for f in found] == ["r2", "r4", "r5"]
    assert [f[0] for f in at_import] == ["r1", "r11"]
    meta["lines"]["pkg/m.py"].append(6)  # the branch taken: its second line counts with it
    found, _ = realworld.model_flags(meta, report, tmp_path, {})
    assert [f[0] for f in found] == ["r2", "r4", "r5", "r7"]


def test_the_tracer_records_functions_and_lines(tmp_path):
    module = tmp_path / "pkg_traced.py"
    module.write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import pkg_traced
        tracer = realworld._Tracer([tmp_path])
        sys.settrace(tracer)
        try:
            pkg_traced.f(False)
        finally:
            sys.settrace(None)
    finally:
        sys.path.remove(str(tmp_path))
    assert tracer.ran == {str(module): {1}}
    assert tracer.lines == {str(module): {2, 4}}


def test_corpus_keys_are_unique_though_names_repeat_across_packages():
    # timm and torchvision both have resnet18: the saved data of one was read for the other
    from realworld_corpus import CORPUS
    keys = [e.key for e in CORPUS]
    assert len(set(keys)) == len(keys)
    assert {"timm.resnet18", "torchvision.resnet18"} <= set(keys)
