"""The torch layers that are channels-last in MLX: facts the core needs (`project.py` finds the project's
builders of such layers) as well as the nn-layout transform (`transforms/layout/tables.py`, which
holds the rest of the layout tables).

A layer in `SPATIAL` is channels-last in MLX: its output has the given layout whatever the input's.
`KEEP` layers are channels-last too and keep their input's layout. `Layout` names what the layout
analysis knows of a value, or what a submodule does to a channels-last value.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Optional


class Layout(StrEnum):
    """A value's layout in the converted code, or a submodule's effect on a channels-last input. A `StrEnum`:
    members equal (and hash like) their values, so they order and print as those."""

    # what a value is
    CL1 = "cl1"            # (N, L, C): torch's (N, C, L) held channels-last
    CL2 = "cl2"            # (N, H, W, C): torch's (N, C, H, W) held channels-last
    CL3 = "cl3"            # (N, D, H, W, C)
    POOLED = "g"           # (N, 1, 1, C), after a global pool: flattens alike in both layouts
    PLAIN = "plain"        # torch's layout (the same array in both frameworks)
    UNKNOWN = "unknown"    # given up on where that was flagged: what reads it is kept as written
    MIXED = "?"            # channels-last on one path, not on another: flagged where it is read
    # what a submodule does to a channels-last input (besides giving one of the layouts above)
    PER_POSITION = "pp"    # acts on each position alone: the input's layout is kept
    KEEP = "keep"          # a channels-last layer keeping its input's layout (upsampling, GroupNorm, ...)
    UNFOLLOWED = "flag"    # channels-last layers beside what the analysis cannot follow: its calls are flagged
    NCHW = "nchw"          # takes torch's layout (a layer built from a class value, as nn-layer-values' helper)
    ABSENT = "absent"      # an attribute set to None (or not at all) on some path of __init__
    UNPROVEN = "unproven"  # a class of the file taking channels-last input, not proven to keep it

    @property
    def words(self) -> str:
        """The layout in a user's words (diagnostics say this, never the member's value)."""
        return _WORDS.get(self, f"'{self.value}'")


_WORDS = {Layout.CL1: "channels-last (N, L, C)", Layout.CL2: "channels-last (N, H, W, C)",
          Layout.CL3: "channels-last (N, D, H, W, C)", Layout.POOLED: "channels-last (N, 1, 1, C)",
          Layout.PLAIN: "torch's layout", Layout.UNKNOWN: "an unknown layout",
          Layout.MIXED: "channels-last on one path and torch's layout on another"}
CHANNELS_LAST = (Layout.CL1, Layout.CL2, Layout.CL3)


@dataclass(frozen=True)
class Seq:
    """A list or tuple of values of one channels-last layout (`outputs = [a, b]`; `torch.cat(outputs, 1)` reads it)."""
    of: Layout

    @property
    def words(self) -> str:
        return f"a list of {self.of.words} maps"


@dataclass(frozen=True)
class ModuleList:
    """What an `nn.ModuleList` of blocks that map a channels-last `of` value to one of the same layout does
    (`for block in self.blocks: x = block(x)` is followed)."""
    of: Layout


@dataclass(frozen=True)
class ToPlain:
    """What a class of the file does that takes a channels-last `of` value and returns torch's layout (a head)."""
    of: Layout

SPATIAL = {"Conv2d": Layout.CL2, "ConvTranspose2d": Layout.CL2, "MaxPool2d": Layout.CL2, "AvgPool2d": Layout.CL2,
           "BatchNorm2d": Layout.CL2, "InstanceNorm2d": Layout.CL2, "Conv1d": Layout.CL1, "InstanceNorm1d": Layout.CL1,
           # 2-D adaptive pools: channels-last (N, H, W, C) unless the output size is 1
           "AdaptiveAvgPool2d": Layout.POOLED, "AdaptiveMaxPool2d": Layout.POOLED,
           "AdaptiveAvgPool1d": Layout.CL1,
           # rules/nn_layers_extra.yaml
           "MaxPool1d": Layout.CL1, "AvgPool1d": Layout.CL1, "ConvTranspose1d": Layout.CL1,
           "Conv3d": Layout.CL3, "ConvTranspose3d": Layout.CL3, "MaxPool3d": Layout.CL3, "AvgPool3d": Layout.CL3,
           "BatchNorm3d": Layout.CL3}
ADAPTIVE = frozenset({"AdaptiveAvgPool2d", "AdaptiveMaxPool2d"})
# channels-last in MLX and keeps the layout of its input (Layout.KEEP)
KEEP = frozenset({"Upsample", "GroupNorm", "PixelShuffle", "PixelUnshuffle",
                  # rules/nn_layers_extra.yaml: local channels-last pads, channel dropout, MLX's Dropout2d/3d
                  *(f"{kind}Pad{d}d" for kind in ("Zero", "Constant", "Reflection", "Replication") for d in (1, 2, 3)),
                  "Dropout1d", "Dropout2d", "Dropout3d", "LocalResponseNorm"})


# torch functions the layout analysis remaps on channels-last data (tables.LAYOUT_FUNCTIONS), by their short names
_LAYOUT_FUNCTION_WORDS = ("interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle", "adaptive_avg_pool2d",
                          "adaptive_max_pool2d", "max_pool2d", "avg_pool2d")


def may_flag_layout(text: str) -> bool:
    """Whether the channels-last analysis may flag this file (a cheap check on its text): it names a channels-last
    layer, a function the analysis remaps, or a torch container it does not follow. A directory run's layout is
    decided by these files (`api._project_layout`), so their contents are part of the project's key."""
    return "torch" in text and (any(k in text for k in SPATIAL) or any(k in text for k in KEEP)
                                or any(k in text for k in _LAYOUT_FUNCTION_WORDS)
                                or "Sequential" in text or "ModuleDict" in text)


# nn-layer-values' flag on a class deriving from a torch container: a warning of the channels-last analysis too (`api`)
CONTAINER_LAYOUT_MARK = "nn-layout does not follow the modules it holds"


class ProjectLayouts(frozenset):
    """What a file of a directory run knows of the layouts of other project files: the names it imports that
    build channels-last layers there (the frozenset itself), and in `classes`, for the module classes among them
    that their own file converts to take a channels-last value and give one without a flag, the layout they give
    (`Layout.CL2`, ..., or `ToPlain`), by the name this file imports them as. Used like classes of the file itself."""

    classes: dict

    def __new__(cls, builders=(), classes: Optional[dict] = None):
        made = super().__new__(cls, builders)
        made.classes = dict(classes or {})
        return made
