"""`.reshape(...)` / `.flatten(...)` on a value the facts do not type stays as written, unflagged (id `array-methods`).

The table translates `x.reshape(2, -1)` of a known tensor to `mx.reshape(x, (2, -1))` and flags the method on any
other receiver ("not known to be a tensor": `.reshape` is also numpy's). But the call as written already means
torch's reshape on every array the converted code can hold: `mx.array.reshape(*shape)` takes the shape as one
sequence or as separate sizes, `-1` included, exactly as `torch.Tensor.reshape` (and `numpy.ndarray.reshape`,
the other receiver the flag had in mind, does the same). So on an unknown receiver the call is left as written,
right whichever of them the value is. timm's ResNeSt (`x.reshape((B, self.radix, RC // self.radix, H, W))` after
`self.act0(x)` of a layer built from a class argument), PVT-v2 and ConvNeXt (`self.gamma.reshape(1, -1, 1, 1)`, a
Parameter or None) read it so.

`.flatten(start, end)` likewise: mx.array.flatten(start_axis=0, end_axis=-1) takes torch's dims in torch's order
(a 0-d array flattens to shape (1,) in both); numpy's flatten takes no int (its argument is `order`), so where the
torch code ran with ints its receiver was no numpy array. transformers' Deformable DETR, timm's MetaFormer head.

Only positional arguments (`*shape` included) count: torch's `shape=` / `start_dim=` keywords are no MLX keywords,
and `.view` (an MLX dtype view) is never taken for a reshape. A receiver known to be a tensor is the table's.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform

# method -> the table's rule whose "not known to be a tensor" flag it drops
_SAME_METHODS = {"reshape": "torch.reshape", "flatten": "torch.flatten"}


class ArrayMethods(Transform):
    id = "array-methods"
    description = "`.reshape(...)` / `.flatten(...)` of an untyped value: mx.array's mean the same, left as written"

    def applies_to(self, text: str) -> bool:
        return ".reshape(" in text or ".flatten(" in text

    def leave_Call(self, rw, original: cst.Call, updated):
        func = original.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in _SAME_METHODS):
            return updated
        if func.attr.value == "reshape" and not original.args:
            return updated
        if any(a.keyword is not None or a.star == "**" for a in original.args) or rw.tensors.is_tensor(func.value):
            return updated
        rw.drop_flags(original, rule_id=_SAME_METHODS[func.attr.value], kind="unknown-receiver")
        return updated
