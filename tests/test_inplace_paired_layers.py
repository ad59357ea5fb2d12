"""nn-inplace-activation: an in-place activation held in an attribute whose input layer another method may swap for
nn.Identity, where that method swaps the activation out at once too (timm's ghostnet: `prune_intermediate_layers`
sets `self.bn1 = nn.Identity()` and `self.act1 = nn.Identity()` together; `forward_intermediates` appends the stem
output to a list before `self.act1(self.bn1(x))`). While `self.act1` is the `nn.ReLU(inplace=True)` of `__init__`,
`self.bn1` is the norm of `__init__`, whose output is a new tensor: dropping inplace=True is exact.

Run under torch and MLX (before and after the pruning); where the swap is not paired (the activation stays, or a
call could run in between) the flag stays.
"""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

# timm 1.0.31 models/ghostnet.py (GhostNet's stem, forward_intermediates, prune_intermediate_layers, forward_head),
# reduced: Linear/LayerNorm stand for the stem's conv/BatchNorm (the idiom is the same, without layouts)
GHOST = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, chans=6):
        super().__init__()
        self.conv_stem = nn.Linear(chans, chans)
        self.bn1 = nn.LayerNorm(chans)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_head = nn.Linear(chans, chans)
        self.act2 = nn.ReLU(inplace=True)

    def prune_intermediate_layers(self, max_index):
        if max_index < 0:
            self.bn1 = nn.Identity()
            self.act1 = nn.Identity()
        self.conv_head = nn.Identity()
        self.act2 = nn.Identity()

    def forward_intermediates(self, x):
        intermediates = []
        x = self.conv_stem(x)
        intermediates.append(x)
        x = self.bn1(x)
        x = self.act1(x)
        intermediates.append(x)
        return x, intermediates

    def forward_head(self, x):
        x = x * 2
        x = self.conv_head(x)
        x = self.act2(x)
        return x

    def forward(self, x):
        x, intermediates = self.forward_intermediates(x)
        return self.forward_head(x), intermediates

'''


def _state(rng):
    w = {f"{n}.weight": rng.standard_normal((6, 6)).astype(np.float32) for n in ("conv_stem", "conv_head")}
    b = {f"{n}.bias": rng.standard_normal(6).astype(np.float32) for n in ("conv_stem", "conv_head")}
    norm = {"bn1.weight": rng.standard_normal(6).astype(np.float32), "bn1.bias": rng.standard_normal(6).astype(np.float32)}
    return {**w, **b, **norm}


def _run(source, framework, x, state, prune):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    if framework == "torch":
        import torch
        conv = torch.from_numpy
    else:
        import mlx.core as mx
        conv = mx.array
    net = namespace["Net"]()
    weights = {k: conv(v.copy()) for k, v in state.items()}
    if framework == "torch":
        net.load_state_dict(weights, strict=False)
        net.eval()
    else:
        net.load_weights(list(weights.items()), strict=False)
    if prune is not None:
        net.prune_intermediate_layers(prune)
    out, intermediates = net(conv(x.copy()))
    return [to_numpy(v) for v in (out, *intermediates)]


def _warnings(result):
    return [d for d in result.diagnostics if d.severity.value != "info"]


def test_paired_swap_converts_and_matches_torch():
    result = convert_source(GHOST)
    assert not _warnings(result), "\n".join(d.format() for d in _warnings(result)) + "\n" + result.code
    assert "inplace" not in result.code.split("def example")[0], result.code
    rng = np.random.RandomState(0)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    state = _state(rng)
    for prune in (None, 0, -1):
        expected = _run(GHOST, "torch", x, state, prune)
        actual = _run(result.code, "mlx", x, state, prune)
        assert len(expected) == len(actual) == 3
        for e, a in zip(expected, actual):
            assert compare(e, a) is None, (prune, compare(e, a))
    # the idiom can tell the forms apart: the stem output kept in the list is not the activation's output
    expected = _run(GHOST, "torch", x, state, None)
    assert (expected[1] < 0).any() and not (expected[2] < 0).any()


def _variant(old: str, new: str) -> str:
    assert old in GHOST
    return GHOST.replace(old, new)


FLAGGED = [
    # the norm is swapped for Identity, the activation is not: torch's ReLU then updates the kept stem output
    ("unpaired", _variant("            self.act1 = nn.Identity()\n", "            pass\n"), "self.act1"),
    # something runs between the two swaps (it could call the activation while the norm is Identity)
    ("a call between", _variant("            self.bn1 = nn.Identity()\n", "            self.bn1 = nn.Identity()\n"
                                "            self.forward_intermediates(torch.zeros(1, 6))\n"), "self.act1"),
    # the in-place activation is made outside __init__: it may follow the swap
    ("made elsewhere", _variant("        self.act2 = nn.Identity()\n", "        self.act2 = nn.Identity()\n"
                                "\n    def restore(self):\n        self.act1 = nn.ReLU(inplace=True)\n"), "self.act1"),
]


@pytest.mark.parametrize("name,source,holder", FLAGGED, ids=[f[0] for f in FLAGGED])
def test_unpaired_swaps_stay_flagged(name, source, holder):
    result = convert_source(source)
    messages = [d.message for d in _warnings(result) if d.rule_id == "torch.nn.ReLU"]
    assert any("inplace=True" in m for m in messages), (messages, result.code)
    init = result.code.split("def prune_intermediate_layers")[0]
    assert f"{holder} = nn.ReLU(inplace=True)" in init, result.code  # the one of __init__ stays as written


def test_unpaired_swap_really_differs_in_torch():
    """Why the unpaired case stays flagged: with the norm an Identity, torch's in-place ReLU changes the kept tensor."""
    import torch

    stem = torch.tensor([[-1.0, 2.0]])
    kept = [stem]
    torch.nn.ReLU(inplace=True)(torch.nn.Identity()(stem))
    assert float(kept[0][0, 0]) == 0.0


def test_view_argument_stays_flagged():
    source = textwrap.dedent('''
        import torch
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(4, 4)
                self.act = nn.ReLU(inplace=True)

            def forward(self, x):
                x = self.proj(x)
                y = self.act(x[:, :2])
                return x, y
    ''')
    result = convert_source(source)
    messages = [d.message for d in _warnings(result) if d.rule_id == "torch.nn.ReLU"]
    assert messages and "nn.ReLU(inplace=True)" in result.code, (messages, result.code)
