"""Layer classes in checks (nn-init): `isinstance(m, nn.Linear)`, `type(m) is nn.Linear`, `m.bias is None`.

- A torch layer class as isinstance's second argument (alone or in a tuple), or compared with
  `type(x)` by `is`/`==`, becomes the MLX class named by its rule in rules/nn_classes.yaml (a
  value rule with `context: annotation`: elsewhere a class used as a value stays flagged). Only
  classes whose constructor is the only one that builds that MLX class have a rule (torch's
  BatchNorm1d/2d both become MLX BatchNorm: their rules are manual, so the check stays flagged).
- `m.bias is not None` / `m.bias is None` (also `.weight`) where `m` is known to be one of
  the layers below (narrowed by isinstance, or a `self.<attr>` built in the class) becomes
  `"bias" in m` / `"bias" not in m`: an MLX layer built without a bias has no "bias" key, and
  reading `m.bias` raises AttributeError there.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

# torch layers whose MLX counterparts keep optional parameters as keys, absent when disabled
# (checked by tests/test_transforms/test_nn_init_more.py against MLX)
OPTIONAL_KEYS = frozenset({
    "torch.nn.Linear", "torch.nn.Bilinear", "torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.ConvTranspose2d",
    "torch.nn.Embedding", "torch.nn.LayerNorm", "torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d",
})


def class_arguments(call: cst.Call) -> list:
    """The class expressions of `isinstance(x, C)` / `isinstance(x, (C1, C2))`, else []."""
    if not (isinstance(call.func, cst.Name) and call.func.value == "isinstance" and len(call.args) == 2
            and not any(a.star or a.keyword for a in call.args)):
        return []
    classes = call.args[1].value
    return [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]


def type_comparison_class(node: cst.Comparison) -> Optional[cst.BaseExpression]:
    """C of `type(x) is C` / `type(x) == C` (or the negations), else None."""
    left = node.left
    if not (isinstance(left, cst.Call) and isinstance(left.func, cst.Name) and left.func.value == "type"
            and len(left.args) == 1 and len(node.comparisons) == 1):
        return None
    op = node.comparisons[0].operator
    return node.comparisons[0].comparator if isinstance(op, (cst.Is, cst.IsNot, cst.Equal, cst.NotEqual)) else None


def class_value(rw, original: cst.BaseExpression) -> Optional[str]:
    """The MLX class for a torch layer class reference with an nn_classes rule, else None."""
    qual = rw.qualified_name(original)
    rule = rw.index.value(qual) if qual is not None else None
    if (rule is None or rule.status == "manual" or rule.mlx is None or rule.context != "annotation"
            or not qual.startswith("torch.nn.") or not rule.mlx.startswith("nn.")):
        return None
    return rule.mlx


def optional_member_check(node: cst.Comparison) -> Optional[tuple]:
    """(module expr, member name, is_not) for `m.bias is not None` / `m.bias is None`, else None."""
    if len(node.comparisons) != 1 or not isinstance(node.left, cst.Attribute):
        return None
    target = node.comparisons[0]
    if not (isinstance(target.operator, (cst.Is, cst.IsNot)) and isinstance(target.comparator, cst.Name)
            and target.comparator.value == "None" and node.left.attr.value in ("bias", "weight")):
        return None
    return node.left.value, node.left.attr.value, isinstance(target.operator, cst.IsNot)


def key_check(updated: cst.Comparison, member: str, present: bool) -> cst.Comparison:
    operator = cst.In() if present else cst.NotIn()
    module = updated.left.value  # type: ignore[attr-defined]
    return cst.Comparison(left=cst.SimpleString(f'"{member}"'),
                          comparisons=[cst.ComparisonTarget(operator=operator, comparator=module)],
                          lpar=updated.lpar, rpar=updated.rpar)
