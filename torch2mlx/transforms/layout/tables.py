"""What each torch layer and function does to a channels-last value (used by nn_layout.py).

Layouts are `layout_facts.Layout` members.
`SPATIAL`, `ADAPTIVE` and `KEEP` (which layers are channels-last in MLX) are in
torch2mlx/layout_facts.py; this module re-exports them. `PER_POSITION`
layers and `FUNCTIONS` act on each position alone (or on the last axis of a (N, C) value), so
a channels-last input stays channels-last. Adding a layer here is enough for the analysis.
"""
from __future__ import annotations

from enum import StrEnum

# which layers are channels-last in MLX is a fact the core needs too (project.py): it lives there
from torch2mlx.layout_facts import ADAPTIVE, KEEP, SPATIAL, Layout  # noqa: F401  (re-exported for nn-layout)

_F = "torch.nn.functional."
# functions translated for NCHW arrays between transposes (rules/nn_vision_extra.yaml, nn_upsample.yaml);
# on a channels-last map the transposes go: what the function then gives (`Resampled`)


class Resampled(StrEnum):
    KEEP = "keep"        # the input's layout ((N, 1, 1, C) becomes a feature map)
    POOL = "pool"        # adaptive pooling: (N, 1, 1, C) for output size 1, else a (N, H, W, C) map
    SPATIAL = "spatial"  # a (N, H, W, C) map whatever the input's size


LAYOUT_FUNCTIONS = {_F + "interpolate": Resampled.KEEP, _F + "upsample": Resampled.KEEP,
                    _F + "pixel_shuffle": Resampled.KEEP, "torch.pixel_shuffle": Resampled.KEEP,
                    _F + "pixel_unshuffle": Resampled.KEEP, "torch.pixel_unshuffle": Resampled.KEEP,
                    _F + "adaptive_avg_pool2d": Resampled.POOL, _F + "adaptive_max_pool2d": Resampled.POOL,
                    # rules/breadth_pooling.yaml: a channels-last (N, H, W, C) map whatever the input's size
                    _F + "max_pool2d": Resampled.SPATIAL, "torch.max_pool2d": Resampled.SPATIAL,
                    _F + "avg_pool2d": Resampled.SPATIAL, "torch.avg_pool2d": Resampled.SPATIAL}
PER_POSITION = frozenset({"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "Dropout", "Identity",
                           "LeakyReLU", "ELU", "Hardswish", "Mish", "BatchNorm1d"})
FUNCTIONS = frozenset({"torch.nn.functional.relu", "torch.relu", "torch.nn.functional.gelu", "torch.sigmoid",
                        "torch.tanh", "torch.nn.functional.silu", "torch.nn.functional.relu6", "torch.nn.functional.dropout"})

# torch axis -> channels-last axis, and the permutations between the two forms
TO_TORCH_AXES = {Layout.CL2: (0, 3, 1, 2), Layout.CL1: (0, 2, 1), Layout.CL3: (0, 4, 1, 2, 3)}  # channels-last -> torch's
TO_TORCH = {layout: str(axes) for layout, axes in TO_TORCH_AXES.items()}  # the same, as written in code
AXES = {Layout.CL2: {0: 0, 1: 3, 2: 1, 3: 2, -1: 2, -2: 1, -3: 3, -4: 0},
        Layout.CL1: {0: 0, 1: 2, 2: 1, -1: 1, -2: 2, -3: 0},
        Layout.CL3: {0: 0, 1: 4, 2: 1, 3: 2, 4: 3, -1: 3, -2: 2, -3: 1, -4: 4, -5: 0}}
AXES[Layout.POOLED] = AXES[Layout.CL2]
TO_CL = {Layout.CL2: "(0, 2, 3, 1)", Layout.CL1: "(0, 2, 1)", Layout.CL3: "(0, 2, 3, 4, 1)"}  # torch's -> channels-last
