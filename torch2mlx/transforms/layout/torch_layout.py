"""The torch-layout build: every channels-last MLX layer built as a helper taking PyTorch's (N, C, ...) layout.

**When**: in place of the channels-last analysis (nn_layout.py), for a whole file (single-file runs) or a whole
project (directory runs), where that analysis would flag (`api`: the layout mode, `auto` by default; `layout =
"torch"` asks for it always). Per project, not per class: a class built in torch's layout hands its data in
torch's layout to whatever it calls, class values passed around included (a ResNet calling a `block_fn` given by
another file), so every class of the project must take torch's layout for any of them to.

**What it does**: each construction of a torch layer that MLX runs channels-last (`layout_facts`: SPATIAL,
ADAPTIVE, KEEP) becomes a layer with torch's constructor that takes and gives torch's layout, moving the channels
last around MLX's own layer:
- convolutions, batch norms, group norm: the helpers of nn-layer-values (`Conv2dNCHW`,
  `BatchNorm2dNCHW`, ...: subclasses of MLX's layers, so `load_torch_weights` loads them as MLX's own and
  `isinstance(m, nn.Conv2d)` holds); BatchNorm1d too (`BatchNorm1dNCHW`, exact on (N, C) and (N, C, L));
  transposed convolutions and instance norms (`ConvTranspose2dNCHW`, `InstanceNorm1dNCHW`, ...: helpers of this
  build only, no class value becomes them);
- layers without parameters (pools, adaptive pools, pads, upsampling, pixel shuffles, channel dropout, local
  response norm): the table's channels-last translation (`ceil_mode` and all) wrapped in `torch_layout_layer(layer, axis)` (no parameter, so no
  weight name changes); `axis` is torch's channel axis, counted from the end where torch also takes an
  unbatched input;
- a construction with *args / **kwargs (timm's create_conv2d) is nn-layer-values' (`STARRED`): in this build it
  gives the NCHW helper as well.
Nothing else changes: the rest of the code stays in torch's layout, which every layer now takes, so what it does
to a feature map (flatten, permute, cat over dim 1, functional pools and convolutions, which the table
translates for torch's layout) means what it means in torch. Script-level layer calls need no transposes
either (nn-script-layers does not run).

**Left flagged (nn-layout)**: a layer with parameters and no helper, a
construction the table itself flagged (groups in a transposed convolution, InstanceNorm3d, running statistics), a helper whose arguments name torch (kept as written, they would not
mean the same), a layer with parameters whose construction takes *args / **kwargs and has no helper.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.patterns import find
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import add_helpers
from torch2mlx.transforms.layout.tables import ADAPTIVE, KEEP, SPATIAL
from torch2mlx.transforms.module.layer_values import DEPENDS, HELPER_CODE, VALUES

RULE = "nn-layout"
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))

TORCH_LAYOUT_LAYER = '''
class torch_layout_layer(nn.Module):
    """A channels-last MLX layer without parameters made to take and give PyTorch's channels-first data: the
    channels (axis `axis`) moved last around its call, then back."""

    def __init__(self, layer, axis):
        super().__init__()
        self.layer = layer
        self.axis = axis

    def __call__(self, x):
        return mx.moveaxis(self.layer(mx.moveaxis(x, self.axis, -1)), -1, self.axis)
'''

# layers without parameters whose table translation is channels-last: torch's channel axis (1 where torch needs
# a batch axis; counted from the end where torch also takes the unbatched (C, ...) form)
_PAD_AXES = {f"{kind}Pad{d}d": -(d + 1) for kind in ("Zero", "Constant", "Reflection", "Replication") for d in (1, 2, 3)}
_POOL_AXES = {f"{kind}Pool{d}d": -(d + 1) for kind in ("Max", "Avg") for d in (1, 2, 3)}
PARAMETERLESS = {**_POOL_AXES, "AdaptiveAvgPool2d": -3, "AdaptiveMaxPool2d": -3, "AdaptiveAvgPool1d": -2,
                 "PixelShuffle": -3, "PixelUnshuffle": -3, "Upsample": 1, "LocalResponseNorm": 1,
                 "Dropout1d": -2, "Dropout2d": -3, "Dropout3d": -4, **_PAD_AXES}
CHANNELS_LAST = frozenset(SPATIAL) | frozenset(ADAPTIVE) | frozenset(KEEP) | {"BatchNorm1d"}


def layer_kind(rw, call: cst.BaseExpression) -> Optional[str]:
    """`Conv2d` for a call of torch's nn.Conv2d (any spelling of it), else None."""
    if isinstance(call, cst.Call):
        qual = rw.qualified_name(call.func) or ""
        if qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional"):
            return qual.rsplit(".", 1)[-1]
    return None


# layers with parameters whose NCHW helper serves this build only (no class value translation builds them)
TORCH_LAYOUT_ONLY = {**{f"ConvTranspose{d}d": f"ConvTranspose{d}dNCHW" for d in (1, 2, 3)},
                     **{f"InstanceNorm{d}d": f"InstanceNorm{d}dNCHW" for d in (1, 2)}}


def nchw_helper(kind: str) -> Optional[str]:
    """The helper with torch's constructor taking torch's layout for layer `kind` (`Conv2dNCHW`), or None."""
    helper = VALUES.get(kind, (TORCH_LAYOUT_ONLY.get(kind, ""),))[0]
    return helper if helper.endswith("NCHW") and helper in HELPER_CODE else None


class TorchLayoutTransform(Transform):
    """Not discovered (no class id): nn-layout's `torch_layout_build()`, which `api` runs in its place where the
    torch layout is chosen; the same id then (`rw.transform("nn-layout")` finds it)."""

    order = 110
    builds_torch_layout = True  # read by nn-layer-values (its *args / **kwargs constructions)

    def __init__(self) -> None:
        self.id = RULE

    def leave_Call(self, rw, original: cst.Call, updated):
        kind = layer_kind(rw, original)
        if kind not in CHANNELS_LAST or any(a.star for a in original.args):
            return updated  # not a channels-last layer; or nn-layer-values' construction (STARRED)
        if any(f.node is original and f.severity != "info" for f in rw.flags()):
            return updated  # flagged by the table (kept as written: torch's layer)
        named_torch = any((rw.qualified_name(n) or "").startswith("torch")
                          for a in original.args for n in find(a.value, (cst.Name, cst.Attribute)))
        helper = nchw_helper(kind)
        if helper is not None and not named_torch and kind not in PARAMETERLESS:
            names = add_helpers(rw, [*DEPENDS.get(helper, ()), helper], HELPER_CODE)
            rw.need_import("mx", "nn")
            return cst.Call(func=cst.Name(names[helper]), args=original.args)
        if kind in PARAMETERLESS:  # (the table's translation: its arguments as the table reads them, ceil_mode...)
            names = add_helpers(rw, ["torch_layout_layer"], {"torch_layout_layer": TORCH_LAYOUT_LAYER})
            rw.need_import("mx", "nn")
            axis = PARAMETERLESS[kind]
            value = cst.Integer(str(axis)) if axis >= 0 else cst.UnaryOperation(cst.Minus(), cst.Integer(str(-axis)))
            return cst.Call(func=cst.Name(names["torch_layout_layer"]),
                            args=[cst.Arg(updated, comma=_COMMA), cst.Arg(value)])
        why = "its arguments name torch" if helper is not None else "no helper takes torch's layout for it"
        rw.flag(original, RULE, "no-equivalent", f"MLX's {kind} takes channels-last data and the code is built in torch's "
                "layout (the channels-last analysis does not follow it): " + why)
        return original
