"""`x.to(...)`: device arguments disappear, a dtype becomes `.astype(...)`."""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Flag, code_of
from torch2mlx.handlers import register
from torch2mlx.template import sentinel

_MX = re.escape(sentinel("mx"))
_DTYPE = re.compile(rf"^{_MX}\.(bool_|u?int(8|16|32|64)|float(16|32|64)|bfloat16|complex64)$")
# an MLX dtype under its final alias (`mx.int32`), as found when converting converted code again
_CONVERTED_DTYPE = re.compile(r"^\w+\.(bool_|u?int(8|16|32|64)|float(16|32|64)|bfloat16|complex64)$")
_DEVICE_CALL = re.compile(rf"^{_MX}\.(default_device|Device)\(")
_DROPPED_KEYWORDS = {"non_blocking", "copy", "memory_format", "device"}


_DEVICE_STRING = re.compile(r"""^[rbuRBU]?(['"])(cpu|cuda|mps|meta|xla|xpu)(:\d+)?\1$""")


def _is_device(node: cst.BaseExpression) -> bool:
    code = code_of(node)
    if isinstance(node, cst.SimpleString):
        return bool(_DEVICE_STRING.match(code))
    if _DEVICE_CALL.match(code):
        return True
    last = code.rsplit(".", 1)[-1]
    return isinstance(node, (cst.Name, cst.Attribute)) and ("device" in last.lower() or last in ("dev", "rank", "local_rank"))


def _is_dtype(node: cst.BaseExpression) -> bool:
    """An MLX dtype (already translated), or a name like `dtype` / `x.dtype` / `self.compute_dtype`."""
    code = code_of(node)
    if _DTYPE.match(code) or _CONVERTED_DTYPE.match(code):
        return True
    return isinstance(node, (cst.Name, cst.Attribute)) and code.rsplit(".", 1)[-1].endswith("dtype")


@register("tensor_to")
def tensor_to(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    if receiver is None:
        raise Flag("`.to()` needs a receiver", "internal-error")
    dtype = None
    for before, arg in zip(original.args, call.args):
        if arg.star:
            raise Flag("cannot read a starred argument to `.to()`")
        key = arg.keyword.value if arg.keyword is not None else None
        if key == "dtype" or (key is None and _is_dtype(arg.value)):
            dtype = arg.value
        elif key in _DROPPED_KEYWORDS:
            continue
        elif key is None and rewriter.tensors.is_tensor(before.value) and rewriter.tensors.is_tensor(original.func.value):
            # `x.to(other)` of two tensors: other's dtype (and device, which MLX has not): `x.astype(other.dtype)`
            # (bailing_hybrid's `initial_state.to(value)`); the argument is still evaluated once
            dtype = cst.Attribute(arg.value if not isinstance(arg.value, cst.BinaryOperation) else arg.value.with_changes(
                lpar=[cst.LeftParen()], rpar=[cst.RightParen()]), cst.Name("dtype"))
        elif key is None and _is_device(arg.value):
            # a device is recognised by its name (`device`, `self.dev`, `rank`): a guess, so a value known to be
            # a tensor is not dropped (`x.to(other)` takes other's dtype as well as its device)
            if rewriter.tensors.is_tensor(before.value):
                raise Flag(f"`{code_of(arg.value)}` is a tensor: `.to(tensor)` takes its dtype and device; "
                           "write `.astype(<tensor>.dtype)`", "semantics-differ")
            continue
        else:
            raise Flag(f"cannot tell whether `{code_of(arg.value)}` is a device, a dtype or a tensor; translate by hand")
    if dtype is None:
        return receiver, frozenset()
    if not rewriter.tensors.is_tensor(original.func.value):
        raise Flag("`.to(dtype)` on a value not known to be a tensor (an MLX Module uses set_dtype); annotate it or translate by hand", "unknown-receiver")
    return cst.Call(cst.Attribute(receiver if not isinstance(receiver, cst.BinaryOperation) else receiver.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()]), cst.Name("astype")), [cst.Arg(dtype)]), frozenset({"mx"})
