"""Argument values the conv / batch-norm rules (rules/nn_conv.yaml) cannot express as params.

**What it does**: leaves these constructor calls in place, flagged, after the table converted
them (the table's params can only check "absent or default", not "not this literal"):
- `nn.Conv1d/Conv2d(..., padding='same' | 'valid')`: MLX's convolutions take numbers only
  (a string is accepted when the layer is built and goes wrong later);
- `nn.BatchNorm1d/2d(..., momentum=None)`: torch then keeps a cumulative average of the
  batch statistics; MLX's BatchNorm always uses an exponential one.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.transforms import Transform

_CONV = {f"torch.nn.{k}": 4 for k in ("Conv1d", "Conv2d")} | {f"torch.nn.modules.conv.{k}": 4 for k in ("Conv1d", "Conv2d")}
_NORM = {f"torch.nn.{k}": 2 for k in ("BatchNorm1d", "BatchNorm2d")} | {f"torch.nn.modules.batchnorm.{k}": 2 for k in ("BatchNorm1d", "BatchNorm2d")}


def _argument(call: cst.Call, keyword: str, position: int) -> Optional[cst.BaseExpression]:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return positional[position].value if len(positional) > position else None


class NnConvChecksTransform(Transform):
    id = "nn-conv-checks"
    description = "flags padding='same'/'valid' in convolutions and momentum=None in batch norm"

    def applies_to(self, text: str) -> bool:
        return "Conv" in text or "BatchNorm" in text

    def leave_Call(self, rw, original: cst.Call, updated: cst.BaseExpression):
        qual = rw.qualified_name(original.func)
        if qual in _CONV:
            padding = _argument(original, "padding", _CONV[qual])
            if isinstance(padding, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
                rw.flag(original, qual.replace(".modules.conv", ""), "no-equivalent",
                        "MLX convolutions take numeric padding only: write the padding 'same'/'valid' stands for")
                return original
        elif qual in _NORM:
            momentum = _argument(original, "momentum", _NORM[qual])
            if isinstance(momentum, cst.Name) and momentum.value == "None":
                rw.flag(original, "torch.nn.BatchNorm1d", "no-equivalent",
                        "momentum=None (cumulative average of batch statistics) has no MLX equivalent: "
                        "MLX's BatchNorm keeps an exponential average")
                return original
        return updated
