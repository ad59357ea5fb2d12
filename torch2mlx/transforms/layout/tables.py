"""What each torch layer and function does to a channels-last value (used by nn_layout.py).

Layout kinds: "cl2" (N, H, W, C), "cl1" (N, L, C), "cl3" (N, D, H, W, C), "g" (N, 1, 1, C) after a
global pool.
`SPATIAL`, `ADAPTIVE` and `KEEP` (which layers are channels-last in MLX) are in
torch2mlx/layout_facts.py; this module re-exports them. `PER_POSITION`
layers and `FUNCTIONS` act on each position alone (or on the last axis of a (N, C) value), so
a channels-last input stays channels-last. Adding a layer here is enough for the analysis.
"""
from __future__ import annotations

# which layers are channels-last in MLX is a fact the core needs too (project.py): it lives there
from torch2mlx.layout_facts import ADAPTIVE, KEEP, SPATIAL  # noqa: F401  (re-exported for nn-layout)

_F = "torch.nn.functional."
# functions translated for NCHW arrays between transposes (rules/nn_vision_extra.yaml, nn_upsample.yaml);
# on a channels-last map the transposes go: "keep" the layout, "pool" (adaptive pooling), "spatial" (a (N, H, W, C) map)
LAYOUT_FUNCTIONS = {_F + "interpolate": "keep", _F + "upsample": "keep", _F + "pixel_shuffle": "keep",
                     "torch.pixel_shuffle": "keep", _F + "pixel_unshuffle": "keep", "torch.pixel_unshuffle": "keep",
                     _F + "adaptive_avg_pool2d": "pool", _F + "adaptive_max_pool2d": "pool",
                     # rules/breadth_pooling.yaml: a channels-last (N, H, W, C) map whatever the input's size
                     _F + "max_pool2d": "spatial", "torch.max_pool2d": "spatial",
                     _F + "avg_pool2d": "spatial", "torch.avg_pool2d": "spatial"}
PER_POSITION = frozenset({"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "Dropout", "Identity",
                           "LeakyReLU", "ELU", "Hardswish", "Mish", "BatchNorm1d"})
FUNCTIONS = frozenset({"torch.nn.functional.relu", "torch.relu", "torch.nn.functional.gelu", "torch.sigmoid",
                        "torch.tanh", "torch.nn.functional.silu", "torch.nn.functional.relu6", "torch.nn.functional.dropout"})

# torch axis -> channels-last axis, and the permutations between the two forms
TO_TORCH_AXES = {"cl2": (0, 3, 1, 2), "cl1": (0, 2, 1), "cl3": (0, 4, 1, 2, 3)}  # channels-last -> torch's
TO_TORCH = {layout: str(axes) for layout, axes in TO_TORCH_AXES.items()}  # the same, as written in code
AXES = {"cl2": {0: 0, 1: 3, 2: 1, 3: 2, -1: 2, -2: 1, -3: 3, -4: 0}, "cl1": {0: 0, 1: 2, 2: 1, -1: 1, -2: 2, -3: 0},
         "cl3": {0: 0, 1: 4, 2: 1, 3: 2, 4: 3, -1: 3, -2: 2, -3: 1, -4: 4, -5: 0}}
AXES["g"] = AXES["cl2"]
TO_CL = {"cl2": "(0, 2, 3, 1)", "cl1": "(0, 2, 1)", "cl3": "(0, 2, 3, 4, 1)"}  # torch's -> channels-last
