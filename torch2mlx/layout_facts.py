"""The torch layers that are channels-last in MLX: facts the core needs (`project.py` finds the project's
builders of such layers) as well as the nn-layout transform (`transforms/layout/tables.py`, which
holds the rest of the layout tables).

Layout kinds: "cl2" (N, H, W, C), "cl1" (N, L, C), "cl3" (N, D, H, W, C), "g" (N, 1, 1, C) after a
global pool. A layer in `SPATIAL` is channels-last in MLX: its output has the given layout whatever the
input's. `KEEP` layers are channels-last too and keep their input's layout.
"""
from __future__ import annotations

SPATIAL = {"Conv2d": "cl2", "ConvTranspose2d": "cl2", "MaxPool2d": "cl2", "AvgPool2d": "cl2",
            "BatchNorm2d": "cl2", "InstanceNorm2d": "cl2", "Conv1d": "cl1", "InstanceNorm1d": "cl1",
            "AdaptiveAvgPool2d": "g", "AdaptiveMaxPool2d": "g",  # 2-D adaptive pools: "cl2" unless output size 1
            "AdaptiveAvgPool1d": "cl1",
            # rules/nn_layers_extra.yaml
            "MaxPool1d": "cl1", "AvgPool1d": "cl1", "ConvTranspose1d": "cl1",
            "Conv3d": "cl3", "ConvTranspose3d": "cl3", "MaxPool3d": "cl3", "AvgPool3d": "cl3", "BatchNorm3d": "cl3"}
ADAPTIVE = frozenset({"AdaptiveAvgPool2d", "AdaptiveMaxPool2d"})
# channels-last in MLX and keeps the layout of its input ("keep")
KEEP = frozenset({"Upsample", "GroupNorm", "PixelShuffle", "PixelUnshuffle",
                  # rules/nn_layers_extra.yaml: local channels-last pads, channel dropout, MLX's Dropout2d/3d
                  *(f"{kind}Pad{d}d" for kind in ("Zero", "Constant", "Reflection", "Replication") for d in (1, 2, 3)),
                  "Dropout1d", "Dropout2d", "Dropout3d", "LocalResponseNorm"})
