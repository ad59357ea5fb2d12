"""Expand an MLX template such as ``mx.sum({input}, axis={dim})`` with bound arguments.

Semantics, in one place:
- ``{p}`` as a call argument is dropped when ``p`` is absent (not given, or given as
  the torch default), so the MLX default applies. A rule whose MLX default differs
  says ``always_write`` and the torch default is written instead.
- ``{p}`` anywhere else takes the torch default when absent.
- A varargs parameter given several values becomes a tuple.
- A placeholder used twice needs a side-effect-free argument (a name, attribute or
  literal); anything else is flagged rather than evaluated twice.
- Substituted expressions are parenthesised where operator precedence requires it.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import re
from typing import Optional

import libcst as cst

from torch2mlx.binding import Bound, Flag, code_of
from torch2mlx.table.model import Rule
from torch2mlx.table.template_syntax import PLACEHOLDER as _PLACEHOLDER, PREFIX as _PREFIX, parse_template_syntax

MLX_ROOTS = frozenset({"mx", "nn", "np", "optim"})

_ATOMS = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.Imaginary,
    cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Dict, cst.Set,
    cst.ListComp, cst.DictComp, cst.SetComp, cst.Ellipsis,
)


def is_atomic(node: cst.BaseExpression) -> bool:
    if getattr(node, "lpar", None):
        return True
    if isinstance(node, cst.Tuple):
        return bool(node.lpar)
    return isinstance(node, _ATOMS)


def parenthesize(node: cst.BaseExpression) -> cst.BaseExpression:
    if is_atomic(node):
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def is_simple(node: cst.BaseExpression) -> bool:
    """Safe to evaluate twice: names, attribute chains of names, literals, `x.shape[0]`-style items, and a
    translation's 0-d array of a number (`mx.array(2.0)`, `mx.array(-1, dtype=mx.int64)`: a new equal array each time,
    nothing else happens)."""
    if isinstance(node, cst.Call):
        return literal_array(node) and _is_number(node.args[0].value)
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return is_simple(node.value)
    if isinstance(node, cst.Subscript):
        index = node.slice[0].slice if len(node.slice) == 1 else None
        return isinstance(index, cst.Index) and is_int_literal(index.value) and is_simple(node.value)
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return isinstance(node.expression, (cst.Integer, cst.Float))
    return False


def literal_array(node: cst.BaseExpression) -> bool:
    """A translation's array of literals: `mx.array([1, -3, 5], dtype=mx.int64)`, `mx.array([1., mx.nan])`,
    `mx.array([-1 + 1j])` (the sentinel `mx` of generated code only, not a call the source wrote). Evaluating it
    twice makes two equal new arrays and has no other effect."""
    if not isinstance(node, cst.Call) or not _is_mx_member(node.func, "array") or not node.args:
        return False
    first, rest = node.args[0], node.args[1:]
    if first.keyword is not None or first.star or not _is_number_tree(first.value):
        return False
    return all(a.keyword is not None and a.keyword.value == "dtype" and _is_mx_member(a.value) for a in rest)


def _is_mx_member(node: cst.BaseExpression, attr: Optional[str] = None) -> bool:
    return (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == sentinel("mx")
            and (attr is None or node.attr.value == attr))


def _is_number(node: cst.BaseExpression) -> bool:
    """A number written literally: `2`, `-1.5`, `1j`, `-1 + 1j`, `True`, `mx.nan`, `-mx.inf`."""
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False")
    if _is_mx_member(node):
        return node.attr.value in ("nan", "inf", "pi", "e")  # type: ignore[attr-defined]
    if isinstance(node, cst.UnaryOperation):
        return isinstance(node.operator, (cst.Minus, cst.Plus)) and _is_number(node.expression)
    if isinstance(node, cst.BinaryOperation):  # a complex number, `-1 + 1j`
        return isinstance(node.operator, (cst.Add, cst.Subtract)) and _is_number(node.left) and _is_number(node.right)
    return False


def _is_number_tree(node: cst.BaseExpression) -> bool:
    """A number, or a (nested) list / tuple of them."""
    if isinstance(node, (cst.List, cst.Tuple)):
        return all(isinstance(e, cst.Element) and _is_number_tree(e.value) for e in node.elements)
    return _is_number(node)


def is_int_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Integer):
        return True
    return isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer)


def is_literal(node: cst.BaseExpression) -> bool:
    if is_int_literal(node) or isinstance(node, (cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return isinstance(node.expression, cst.Float)
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(isinstance(e, cst.Element) and is_literal(e.value) for e in node.elements)
    return False


def int_literal_value(node: cst.BaseExpression) -> Optional[int]:
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    if is_int_literal(node):
        return -int(node.expression.evaluated_value)  # type: ignore[attr-defined]
    return None


@functools.lru_cache(maxsize=4096)
def parse_value(code: str) -> cst.BaseExpression:
    """Parse a default or mapped value once; libcst nodes are immutable, so sharing is safe."""
    return cst.parse_expression(code)


@functools.lru_cache(maxsize=4096)
def _literal(code: str):
    try:
        return True, ast.literal_eval(code)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def same_literal(code: str, other: str) -> bool:
    """`"tanh"` and `'tanh'`, `1.0` and `1.`: the same literal written two ways. 1 and True differ."""
    if code == other:
        return True
    ok_a, a = _literal(code)
    ok_b, b = _literal(other)
    return ok_a and ok_b and type(a) is type(b) and a == b


def sentinel(alias: str) -> str:
    """Generated code names MLX modules by a sentinel; the emitter picks the final alias."""
    return f"__t2m_mod_{alias}__"


class _RootMarker(cst.CSTTransformer):
    """Replace the leading `mx`/`nn`/... of attribute chains with sentinels."""

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        if isinstance(updated.value, cst.Name) and updated.value.value in MLX_ROOTS:
            return updated.with_changes(value=cst.Name(sentinel(updated.value.value)))
        return updated


@functools.lru_cache(maxsize=4096)
def _parse_template(template: str) -> cst.BaseExpression:
    return parse_template_syntax(template).visit(_RootMarker())  # type: ignore[return-value]


@functools.lru_cache(maxsize=4096)
def template_placeholders(template: str) -> tuple[str, ...]:
    return tuple(_PLACEHOLDER.findall(template))


@functools.lru_cache(maxsize=4096)
def template_roots(template: str) -> frozenset:
    """MLX module aliases (mx, nn, np, optim) a template refers to."""
    text = _PLACEHOLDER.sub("_", template)
    return frozenset(m for m in re.findall(r"(?<![\w.])([A-Za-z_]\w*)\s*\.", text) if m in MLX_ROOTS)


def _placeholder_name(node: cst.CSTNode) -> Optional[str]:
    if isinstance(node, cst.Name) and node.value.startswith(_PREFIX) and not node.value.startswith("__t2m_mod_"):
        return node.value[len(_PREFIX):]
    return None


class _Filler(cst.CSTTransformer):
    def __init__(self, values: dict, absent: set):
        self.values = values
        self.absent = absent
        self.safe_positions: set[int] = set()
        self.held_positional: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        # dropping an absent positional argument would shift a later one into its slot
        # (f({a}, {b}, {c}) with b absent and c given is f(a, c)): such an argument keeps its place
        # with the torch default written, as `always_write` does
        positional = [arg for arg in node.args if arg.keyword is None and not arg.star]
        for index, arg in enumerate(positional):
            if _placeholder_name(arg.value) in self.absent and any(
                    _placeholder_name(later.value) not in self.absent for later in positional[index + 1:]):
                self.held_positional.add(id(arg))

    def visit_Arg(self, node: cst.Arg) -> None:
        self.safe_positions.add(id(node.value))

    def visit_Element(self, node: cst.Element) -> None:
        self.safe_positions.add(id(node.value))

    def visit_Index(self, node: cst.Index) -> None:
        self.safe_positions.add(id(node.value))

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg):
        name = _placeholder_name(original.value)
        if name is not None and name in self.absent and id(original) not in self.held_positional:
            return cst.RemoveFromParent()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if updated.args and updated.args[-1].comma is not cst.MaybeSentinel.DEFAULT:
            last = updated.args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            updated = updated.with_changes(args=[*updated.args[:-1], last])
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        name = _placeholder_name(original)
        if name is None:
            return updated
        value = self.values[name]
        if id(original) in self.safe_positions:
            if getattr(value, "lpar", None) and not isinstance(value, (cst.Tuple, cst.GeneratorExp, cst.Yield, cst.NamedExpr)):
                value = value.with_changes(lpar=[], rpar=[])
            return value
        return parenthesize(value)


def _varargs_value(items: list) -> cst.BaseExpression:
    if len(items) == 1:
        return items[0]
    elements = [cst.Element(v, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))) for v in items]
    last = elements[-1]
    elements[-1] = last.with_changes(comma=cst.Comma() if len(items) == 1 else cst.MaybeSentinel.DEFAULT)
    return cst.Tuple(elements)


def choose_template(rule: Rule, bound: Bound) -> str:
    for variant in rule.variants:
        if all(bound.present(p) == (state == "present") for p, state in variant.when):
            return variant.mlx
    if rule.mlx is None:
        why = f": translated only when {rule.condition}" if rule.condition else ""
        raise Flag(f"no translation for this combination of arguments{why}", "no-equivalent")
    return rule.mlx


def normalize(rule: Rule, bound: Bound) -> Bound:
    """Apply the rule's parameter specs: drop, flag unsupported, map values, check predicates.

    An argument equal to its torch default counts as absent.
    """
    sig = rule.signature
    assert sig is not None
    out: dict = {}
    for name, value in bound.values.items():
        param = sig.get(name)
        spec = rule.spec(name)
        if isinstance(value, list):
            if spec.drop:
                continue
            if spec.unsupported:
                raise Flag(spec.unsupported)
            out[name] = value
            continue
        code = code_of(value)
        is_default = param is not None and param.default is not None and same_literal(code, param.default)
        if spec.drop or (is_default and not spec.always_write):
            continue
        if spec.unsupported:
            raise Flag(f"argument {name}={code}: {spec.unsupported}")
        if spec.values is not None:
            code = next((key for key in spec.values if same_literal(code, key)), code)
            if code not in spec.values:
                allowed = ", ".join(spec.values)
                raise Flag(f"argument {name}={code} is not a literal this rule can map (one of {allowed})")
            value = parse_value(spec.values[code])
        if spec.require == "int_literal" and not is_int_literal(value):
            raise Flag(f"argument {name} must be an integer literal for an exact translation")
        if spec.require == "literal" and not is_literal(value):
            raise Flag(f"argument {name} must be a literal for an exact translation")
        if spec.require == "simple" and not is_simple(value):
            raise Flag(f"argument {name} must be a plain name or literal for an exact translation")
        if spec.require == "int_or_int_list_literal":
            ok = is_int_literal(value) or (
                isinstance(value, (cst.List, cst.Tuple)) and all(is_int_literal(e.value) for e in value.elements)
            )
            if not ok:
                raise Flag(f"argument {name} must be an integer or a list of integer literals for an exact translation")
        out[name] = value
    for name, spec in rule.params.items():
        if spec.always_write and name not in out:
            param = sig.get(name)
            if param is not None and param.default is not None:
                value = parse_value(param.default)
                if spec.values is not None and param.default in spec.values:
                    value = parse_value(spec.values[param.default])
                out[name] = value
    return Bound(out)


# ids of argument values a template may read twice although `is_simple` refuses them: set by the rewriter around a
# translation, for literal arrays it could not evaluate once through a fresh name (`duplicates_allowed`)
_duplicable: contextvars.ContextVar = contextvars.ContextVar("duplicable", default=frozenset())


@contextlib.contextmanager
def duplicates_allowed(values):
    """Within the block, `expand` writes each of `values` (nodes) as often as its template reads it."""
    token = _duplicable.set(_duplicable.get() | {id(v) for v in values})
    try:
        yield
    finally:
        _duplicable.reset(token)


class EvaluatedTwice(Flag):
    """The template uses argument `name` twice and its value is not safe to evaluate twice (the rewriter may
    evaluate it once into a fresh local name instead)."""

    def __init__(self, name: str, value: cst.BaseExpression):
        super().__init__(f"argument {name} ({code_of(value)}) would be evaluated twice; assign it to a name first")
        self.name = name
        self.value = value


def expand(template: str, rule: Rule, bound: Bound) -> cst.BaseExpression:
    sig = rule.signature
    names = template_placeholders(template)
    values: dict = {}
    absent: set = set()
    for name in set(names):
        if bound.present(name):
            value = bound.get(name)
            if isinstance(value, list):
                value = _varargs_value(value)
            if names.count(name) > 1 and not is_simple(value) and id(value) not in _duplicable.get():
                raise EvaluatedTwice(name, value)
            values[name] = value
            continue
        absent.add(name)
        param = sig.get(name) if sig is not None else None
        if param is not None and param.default is not None:
            values[name] = parse_value(param.default)
        else:
            values[name] = cst.Name("None")
    result = _parse_template(template).visit(_Filler(values, absent))
    for leftover in absent:
        # an absent placeholder outside an argument position had no default to use
        if sig is not None and sig.get(leftover) is None:
            raise Flag(f"template placeholder {{{leftover}}} is not a parameter", "internal-error")
    return result  # type: ignore[return-value]


# ----- the layout of a translated call -----------------------------------------------------------------
def _breaks_line(ws) -> bool:
    return isinstance(ws, cst.ParenthesizedWhitespace)


def _after(arg: cst.Arg):
    """What follows an argument up to the next one (or the closing parenthesis): the comma's whitespace,
    or the argument's own trailing whitespace when it has no comma."""
    return arg.comma.whitespace_after if isinstance(arg.comma, cst.Comma) else arg.whitespace_after_arg


def _without_comment(ws):
    """The same line break and indent, without the comment of the argument it followed."""
    if not _breaks_line(ws):
        return ws
    return ws.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])


_SENTINEL_NAME = re.compile(r"__t2m_mod_(\w+?)__")


def _shifted(ws, shift: int):
    """A line break whose next line starts `shift` columns further right (left when negative)."""
    if not shift or not _breaks_line(ws) or not ws.indent:
        return ws
    width = max(len(ws.last_line.value) + shift, 0)
    return ws.with_changes(last_line=cst.SimpleWhitespace(" " * width))


def is_multiline_call(call: cst.Call) -> bool:
    return _breaks_line(call.whitespace_before_args) or any(_breaks_line(_after(a)) for a in call.args)


def keep_line_breaks(original: cst.Call, result: cst.Call) -> cst.Call:
    """The translation of a call written over several lines, laid out as the call was: an argument the
    translation keeps (the same value, its keyword possibly renamed) is followed by its line break and
    comment; an argument the translation adds gets the call's usual line break. A call on one line, or a
    translation that keeps none of the call's arguments (a different expression), is returned as it is."""
    if not is_multiline_call(original) or not result.args or not original.args:
        return result
    found: list = []
    for arg in result.args:
        match = next((j for j, o in enumerate(original.args)
                      if j not in found and (o.value is arg.value or o.value.deep_equals(arg.value))), None)
        found.append(match)
    if all(j is None for j in found):
        return result
    last = len(original.args) - 1
    between = _after(original.args[last - 1]) if last else original.whitespace_before_args
    between = _without_comment(between)
    closing = _after(original.args[last])
    trailing_comma = isinstance(original.args[last].comma, cst.Comma)
    if not _breaks_line(original.whitespace_before_args):
        # arguments aligned with the opening parenthesis stay aligned with it (`torch.where(` -> `mx.where(`)
        shift = len(_SENTINEL_NAME.sub(r"\1", code_of(result.func))) - len(code_of(original.func))
        between, closing = _shifted(between, shift), _shifted(closing, shift)
    else:
        shift = 0
    args = []
    for i, (arg, j) in enumerate(zip(result.args, found)):
        if i < len(result.args) - 1:
            ws = _shifted(_after(original.args[j]), shift) if j is not None and j < last else between
            arg = arg.with_changes(comma=cst.Comma(whitespace_after=ws), whitespace_after_arg=cst.SimpleWhitespace(""))
        else:
            ws = closing if j == last else _without_comment(closing)
            if trailing_comma:
                arg = arg.with_changes(comma=cst.Comma(whitespace_after=ws), whitespace_after_arg=cst.SimpleWhitespace(""))
            else:
                arg = arg.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=ws)
        args.append(arg)
    return result.with_changes(args=args, whitespace_before_args=original.whitespace_before_args)
