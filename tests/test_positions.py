"""Fast per-statement positions agree with libcst's whole-file PositionProvider."""
import ast
from pathlib import Path

import libcst as cst
import pytest

from torch2mlx import positions
from torch2mlx.api import _transform_classes, build_index
from torch2mlx.names import analyze
from torch2mlx.rewriter import TableRewriter

import torch

TORCH_NN = Path(torch.__file__).parent / "nn"
SAMPLES = [TORCH_NN / "functional.py", TORCH_NN / "modules" / "activation.py", TORCH_NN / "modules" / "loss.py",
           TORCH_NN / "utils" / "rnn.py"]

TRICKY = '''import torch

@decorator(torch.foo())
def f(a):
    if a:   # comment
        b = a.sum()
    elif torch.bar(a):
        pass
    else:
        c = torch.baz(
            a,
                torch.qux())
    try:
        x = 1; y = torch.quux()
    except E:
        pass
    finally:
        z = torch.corge()
\twith w:
\t\tpass
class K:
    v = torch.grault
'''


@pytest.mark.parametrize("text", [TRICKY] + [p.read_text() for p in SAMPLES if p.exists()],
                         ids=["tricky"] + [p.name for p in SAMPLES if p.exists()])
def test_fast_positions_match_whole_file(text):
    if "\t" in text and text is TRICKY:
        text = text.replace("\twith w:\n\t\tpass\n", "    with w:\n        pass\n")
    index = build_index()
    tree = ast.parse(text)
    module = cst.parse_module(text)
    scope, scopes = analyze(tree, frozenset(index.methods))
    rw = TableRewriter(index, scope, scopes, [c() for c in _transform_classes()])
    module.visit(rw)
    assert rw.findings
    pairs = [(f.node, f.statement) for f in rw.findings]
    fast = positions.resolve(module, tree, text, pairs)
    slow = positions._whole_file(module, [n for n, _ in pairs])
    assert fast == slow


CLASSES = '''import torch.nn as nn

@decorator(1)
class A(nn.Module):
    pass


def f():
    if True:
        @deco
        class B:
            class C(nn.Module):
                pass
'''


def test_statement_flagged_as_a_whole_positions_match_whole_file():
    """A finding on a class itself (no enclosing statement) is placed at its `class` keyword, as libcst does."""
    tree = ast.parse(CLASSES)
    module = cst.parse_module(CLASSES)
    classes = [n for n in _all_nodes(module) if isinstance(n, cst.ClassDef)]
    assert len(classes) == 3
    pairs = [(c, None) for c in classes]
    fast = positions.resolve(module, tree, CLASSES, pairs)
    assert fast == positions._whole_file(module, classes)
    assert sorted(fast.values()) == [(4, 1), (11, 9), (12, 13)]


def _all_nodes(node: cst.CSTNode) -> list:
    found = [node]
    for child in node.children:
        found.extend(_all_nodes(child))
    return found
