"""nn-inplace-activation: a Sequential whose first layers are replaced by index from a list literal (torchvision's
mnasnet, `_load_from_state_dict` of a version-1 checkpoint: `for idx, layer in enumerate(v1_stem): self.layers[idx] =
layer`). The Sequential is then the list's layers followed by its own from position len(list) on: every in-place
layer of that sequence still follows a layer making a new tensor, so dropping inplace=True stays exact, for the
Sequential's own layers and for the list's.

Run under torch and MLX, before and after the replacement (the caller's input must be left alone in both); where
the replacement could put an in-place layer right after the Sequential's input, or the list is used elsewhere, the
flag stays.
"""
import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

# torchvision 0.28 models/mnasnet.py (MNASNet.__init__'s layers, _load_from_state_dict's v1 stem), reduced:
# Linear/LayerNorm stand for the conv/BatchNorm pairs (the idiom is the same, without layouts)
MNAS = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, chans=6):
        super().__init__()
        layers = [
            nn.Linear(chans, chans),
            nn.LayerNorm(chans),
            nn.ReLU(inplace=True),
            nn.Linear(chans, chans),
            nn.LayerNorm(chans),
            nn.ReLU(inplace=True),
            nn.Linear(chans, chans),
            nn.ReLU(inplace=True),
        ]
        self.layers = nn.Sequential(*layers)

    def load_v1(self, chans=6):
        v1_stem = [
            nn.Linear(chans, chans),
            nn.ReLU(inplace=True),
            nn.Linear(chans, chans),
            nn.LayerNorm(chans),
            nn.ReLU(inplace=True),
        ]
        for idx, layer in enumerate(v1_stem):
            self.layers[idx] = layer

    def forward(self, x):
        return self.layers(x)
'''


def _run(source, framework, x, replace, rng_seed=0):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    net = namespace["Net"]()
    if replace:
        net.load_v1()
    rng = np.random.RandomState(rng_seed)
    # the layers with parameters, and their weights' rank (Linear 2, LayerNorm 1)
    shapes = ({"layers.0": 2, "layers.2": 2, "layers.3": 1, "layers.6": 2} if replace
              else {"layers.0": 2, "layers.1": 1, "layers.3": 2, "layers.4": 1, "layers.6": 2})
    state = {}
    for name in sorted(shapes):
        if shapes[name] == 2:
            state[f"{name}.weight"] = rng.standard_normal((6, 6)).astype(np.float32)
        else:
            state[f"{name}.weight"] = rng.standard_normal(6).astype(np.float32)
        state[f"{name}.bias"] = rng.standard_normal(6).astype(np.float32)
    if framework == "torch":
        import torch
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        arg = torch.from_numpy(x.copy())
    else:
        import mlx.core as mx
        # MLX's nn.Sequential keeps its layers in a list named `layers`
        net.load_weights([(k.replace("layers.", "layers.layers.", 1), mx.array(v)) for k, v in state.items()])
        arg = mx.array(x.copy())
    out = net(arg)
    return to_numpy(out), to_numpy(arg)


def _warnings(result):
    return [d for d in result.diagnostics if d.severity.value != "info"]


def test_replaced_stem_converts_and_matches_torch():
    result = convert_source(MNAS)
    assert not _warnings(result), "\n".join(d.format() for d in _warnings(result)) + "\n" + result.code
    assert "inplace" not in result.code, result.code
    x = np.random.RandomState(1).standard_normal((3, 6)).astype(np.float32)
    for replace in (False, True):
        expected = _run(MNAS, "torch", x, replace)
        actual = _run(result.code, "mlx", x, replace)
        for e, a in zip(expected, actual):
            assert compare(e, a) is None, (replace, compare(e, a))
        assert compare(expected[1], x) is None  # the caller's input is left alone in torch too


def _variant(old: str, new: str) -> str:
    assert old in MNAS
    return MNAS.replace(old, new)


FLAGGED = [
    # the stem's first layer passes its input on: its in-place ReLU would update the caller's tensor in torch
    ("stem starts in place", _variant("        v1_stem = [\n            nn.Linear(chans, chans),\n",
                                      "        v1_stem = [\n            nn.Identity(),\n")),
    # the stem puts a layer the analysis does not know right before the Sequential's last ReLU
    ("tail follows an unknown layer", _variant(
        "            nn.Linear(chans, chans),\n            nn.LayerNorm(chans),\n            nn.ReLU(inplace=True),\n        ]\n"
        "        for idx",
        "            nn.Linear(chans, chans),\n            nn.LayerNorm(chans),\n            nn.ReLU(inplace=True),\n"
        "            nn.Linear(chans, chans),\n            self.custom,\n        ]\n        for idx")),
    # the list is used elsewhere too (kept on the module: its layers may be called alone)
    ("list kept", _variant("        for idx, layer in enumerate(v1_stem):", "        self.stem = v1_stem\n        for idx, layer in enumerate(v1_stem):")),
    # a replacement by index with an arbitrary layer
    ("single replacement", _variant("        for idx, layer in enumerate(v1_stem):\n            self.layers[idx] = layer\n",
                                    "        self.layers[0] = nn.Identity()\n")),
]


@pytest.mark.parametrize("name,source", FLAGGED, ids=[f[0] for f in FLAGGED])
def test_unsafe_replacements_stay_flagged(name, source):
    result = convert_source(source)
    messages = [d.message for d in _warnings(result) if d.rule_id == "torch.nn.ReLU"]
    assert messages, result.code
    init = result.code.split("def load_v1")[0]
    assert "nn.ReLU(inplace=True)" in init, result.code  # the Sequential's own in-place layers stay as written


def test_replaced_input_layer_really_differs_in_torch():
    """Why the first variant stays flagged: an in-place ReLU right after the input updates the caller's tensor."""
    import torch

    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU(inplace=True))
    x = torch.tensor([-1.0, 2.0])
    net(x)
    assert float(x[0]) == 0.0
