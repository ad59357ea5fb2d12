"""torch.finfo / torch.iinfo (rules/dtypes.yaml): the attribute read from the result decides the translation.

mx.finfo objects have bits, eps, max, min, smallest_normal and dtype; mx.iinfo objects have max, min and
dtype (checked on mlx 0.32). For `torch.finfo(T).<attr>` / `torch.iinfo(T).<attr>`:

- an attribute MLX has with torch's value (finfo bits, eps, max, min, smallest_normal; iinfo max, min):
  `mx.finfo(T).<attr>`;
- finfo `tiny` (torch's alias of smallest_normal): `mx.finfo(T).smallest_normal`;
- finfo `resolution` (10 ** -floor(-log10(eps)), a constant of the dtype): the constant, or a lookup
  by dtype when T is not a literal;
- iinfo `bits`: `T.size * 8` (an mx.Dtype's size is in bytes);
- `dtype` is flagged: torch gives a string ('float32'), MLX an mx.Dtype, so a comparison would change
  meaning silently.

A result that is not read right away (`fi = torch.finfo(x.dtype)`) is flagged: the attributes read
later are out of sight, and some of them do not exist in MLX or differ.

The replaced attribute goes through the rule's `namedtuple` fields: for `.tiny`, `.resolution` and iinfo
`.bits` this handler returns a tuple whose element for that field is the translation, and the rewriter
replaces `<call>.<field>` by that element (as for `torch.max(x, 1).values`).
"""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, sentinel

_SAME = {"finfo": ("bits", "eps", "max", "min", "smallest_normal"), "iinfo": ("max", "min")}
# torch.finfo(T).resolution, exactly (10 ** -6 == 1e-06 etc.)
_RESOLUTION = {"float16": "0.001", "bfloat16": "0.01", "float32": "1e-06", "float64": "1e-15"}
_MX_FLOAT = re.compile(rf"^(?:{re.escape(sentinel('mx'))}|mx)\.(float16|bfloat16|float32|float64)$")


class _AttributeOf(cst.CSTVisitor):
    """Finds the attribute access `<node>.name` in a statement."""

    def __init__(self, node: cst.CSTNode) -> None:
        self.node = node
        self.found = None

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.found is not None:
            return False
        if isinstance(node, cst.Attribute) and node.value is self.node:
            self.found = node.attr.value
            return False
        return True


def _attribute_read(rewriter, original: cst.Call):
    statement = rewriter.statement
    if statement is None:
        return None
    finder = _AttributeOf(original)
    statement.visit(finder)
    return finder.found


@register("dtype_info")
def dtype_info(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    kind = rule.id.rsplit(".", 1)[-1]  # finfo / iinfo
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    attr = _attribute_read(rewriter, original)
    if attr is None:
        raise Flag(f"torch.{kind}(...) kept as an object: read the attribute right away (torch.{kind}(T).max); "
                   f"mx.{kind} lacks some of torch's attributes ({'tiny, resolution' if kind == 'finfo' else 'bits'}) "
                   "and its .dtype is an mx.Dtype where torch's is a string", "semantics-differ")
    if attr in _SAME[kind]:
        return expand(template, rule, bound), frozenset({"mx"})
    if attr == "dtype":
        raise Flag(f"torch.{kind}(...).dtype is a string ('float32'); mx.{kind}(...).dtype is an mx.Dtype: "
                   "compare the dtype itself instead", "semantics-differ")
    if kind == "finfo" and attr == "tiny":
        value = template + ".smallest_normal"
    elif kind == "finfo" and attr == "resolution":
        literal = _MX_FLOAT.match(code_of(bound.get("type"))) if bound.present("type") else None
        if not bound.present("type"):
            value = _RESOLUTION["float32"]
        elif literal:
            value = _RESOLUTION[literal.group(1)]
        else:
            table = ", ".join(f"mx.{name}: {number}" for name, number in _RESOLUTION.items())
            value = "{" + table + "}[{type}]"
    elif kind == "iinfo" and attr == "bits":
        value = "{type}.size * 8"
    else:
        raise Flag(f"torch.{kind} objects have no attribute {attr!r}")
    fields = ["None"] * len(rule.namedtuple)
    fields[rule.namedtuple.index(attr)] = value
    return expand("(" + ", ".join(fields) + ",)", rule, bound), frozenset({"mx"})
