"""TorchScript marker decorators are dropped; script on a class and unknown arguments stay flagged."""
from torch2mlx import convert_source

HEAD = "import torch\nimport torch.nn as nn\n\n\n"


def test_marker_decorators_are_removed_with_their_flags():
    source = HEAD + (
        "class M(nn.Module):\n"
        "    @torch.jit.ignore\n    def a(self):\n        return 1\n\n"
        "    @torch.jit.ignore(drop=False)\n    def b(self):\n        return 2\n\n"
        "    @torch.jit.unused\n    @staticmethod\n    def c():\n        return 3\n\n"
        "    @torch.jit.export\n    def d(self):\n        return 4\n\n\n"
        "@torch.jit.script\ndef f(x: torch.Tensor):\n    return x + 1\n\n\n"
        "@torch.compiler.disable(recursive=False)\ndef g(x):\n    return x\n"
    )
    result = convert_source(source)
    assert not result.diagnostics or all(d.severity.value == "info" for d in result.diagnostics), result.code
    assert "torch" not in result.code and "@" not in result.code.replace("@staticmethod", "")
    assert "    @staticmethod\n    def c():" in result.code
    assert convert_source(result.code).code == result.code


def test_script_on_a_class_and_unknown_arguments_stay_flagged():
    source = HEAD + "@torch.jit.script\nclass C:\n    pass\n\n\n@torch.jit.ignore(True)\ndef f():\n    pass\n"
    result = convert_source(source)
    assert [d.rule_id for d in result.diagnostics] == ["torch.jit.script", "torch.jit.ignore"]
    assert result.code.count("# torch2mlx: torch.jit.") == 2


def test_a_user_comment_naming_a_marker_is_kept():
    source = HEAD + "# see torch.jit.ignore docs\n@torch.jit.ignore\ndef f():\n    pass\n"
    assert "# see torch.jit.ignore docs\ndef f():" in convert_source(source).code


def test_a_marker_between_decorators_leaves_the_others_and_their_flags():
    """The marker goes with its flag; an unknown decorator keeps its own flag line, and a comment above the function
    stays (flags are findings dropped through the context, not comment lines matched by text)."""
    source = ("import torch\n\n\n# the user's note\n@torch.jit.unused\n@torch.some_unknown_decorator\n@torch.jit.ignore\n"
              "def f(x):\n    return x\n")
    result = convert_source(source)
    assert "@torch.jit" not in result.code and "@torch.some_unknown_decorator\ndef f(x):" in result.code
    assert "# the user's note\n" in result.code
    flagged = [d.rule_id for d in result.diagnostics if d.severity.value != "info"]
    assert flagged == ["torch.some_unknown_decorator"], result.diagnostics
    assert result.code.count("# torch2mlx: torch.some_unknown_decorator:") == 1
