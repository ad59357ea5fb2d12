"""The single table-driven pass: every torch call, method and value is looked up once.

One libcst traversal applies the whole rule table. Subtrees (defs and classes) that
mention no torch name and no rule's method name are skipped without being visited.
Anything that cannot be translated exactly is left as written and recorded as a
finding; the emitter turns findings into `# torch2mlx:` comments.
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
import keyword
import re
from typing import Optional, Union

import libcst as cst

from torch2mlx import handlers, value_facts
from torch2mlx.array_facts import BUILTIN_TYPE_METHODS, TORCH_ONLY_MEMBERS
from torch2mlx.emitter import is_generated_mark
from torch2mlx.binding import Bound, Flag, bind
from torch2mlx.context import PluginContext
from torch2mlx.diagnostics import Finding  # defined there; importable from here too, as before
from torch2mlx.names import Scope
from torch2mlx.patterns import names_in
from torch2mlx.table.index import RuleIndex
from torch2mlx.table.model import Rule
from torch2mlx.template import (EvaluatedTwice, choose_template, duplicates_allowed, expand, literal_array, is_atomic, keep_line_breaks, normalize, parenthesize, sentinel, template_placeholders,
                                template_roots)
from torch2mlx.tensors import TORCH_KEYWORDS, TensorFacts, attribute_chain

_SENTINEL = re.compile(r"__t2m_mod_(\w+?)__")
_LITERAL_RECEIVERS = (
    cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Dict, cst.Set,
    cst.ListComp, cst.DictComp, cst.SetComp, cst.Integer, cst.Float,
)


def _suppressions(stmt: cst.CSTNode) -> list[str]:
    comments: list[str] = []
    for line in getattr(stmt, "leading_lines", ()):
        if line.comment is not None:
            comments.append(line.comment.value)
    trailing = getattr(stmt, "trailing_whitespace", None)
    if trailing is not None and trailing.comment is not None:
        comments.append(trailing.comment.value)
    body = getattr(stmt, "body", None)
    header = getattr(body, "header", None)
    if header is not None and header.comment is not None:
        comments.append(header.comment.value)
    return comments


def _is_suppressed(comments: list[str], rule_id: str) -> bool:
    for c in comments:
        if "torch2mlx: ignore" not in c:
            continue
        tail = c.split("torch2mlx: ignore", 1)[1]
        if not tail.startswith("["):
            return True
        ids = tail[1:].split("]", 1)[0]
        if rule_id in [i.strip() for i in ids.split(",")]:
            return True
    return False


def _any_kept(value: cst.CSTNode, kept: set) -> bool:
    """Whether a part of an argument is in the translation (`torch.meshgrid([a, b])` keeps `a` and `b`, not the list)."""
    stack = list(value.children)
    while stack:
        node = stack.pop()
        if id(node) in kept:
            return True
        stack.extend(node.children)
    return False


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)  # what names.py makes a Scope of


class TableRewriter(cst.CSTTransformer):
    def __init__(self, index: RuleIndex, module_scope: Scope, scopes: list, transforms: list = (), cold: Optional[dict] = None,
                 project_layout_builders: Optional[frozenset] = None):
        super().__init__()
        self.context = PluginContext(self, project_layout_builders)  # what transforms and handlers receive
        from torch2mlx.transforms import hooks_for

        self.transforms = list(transforms)
        self._visit_hooks, self._leave_hooks = hooks_for(self.transforms)
        self._visit_dispatch: dict = {}  # node type -> (own visit method or None, transform hooks)
        self._leave_dispatch: dict = {}
        self.module_prelude: list = []  # statements transforms want after the imports
        self.cold = cold or {}  # id(libcst statement) -> its ast statement, for statements with no torch
        self.index = index
        self.scope_list = scopes
        self.project_module_classes = frozenset(getattr(module_scope, "project_classes", ()))
        self.scope_counter = 0
        self.scopes: list[Scope] = [module_scope]
        value_facts.analyze(index, module_scope, scopes)  # params, returns, `self.x` attributes known to be tensors
        self.tensors = TensorFacts(index, self.qualified_name, getattr(module_scope, "tensor_functions", frozenset()),
                                   lambda name: any(s.is_bound_locally(name) for s in self.scopes[1:]))
        core = sentinel("mx")  # generated code names mlx.core by a sentinel until the emitter picks its alias
        self.tensors.tuple_functions = module_scope.tensor_tuples
        self.tensors.is_mlx_core = lambda name: name == core or any(name in s.mlx_core for s in self.scopes)
        self.tensors.is_plain_receiver = self._is_plain_receiver
        self.findings: list[Finding] = []
        self.roots_used: set[str] = set()
        self.converted = 0
        self.call_funcs: set[int] = set()
        self.inner_attrs: set[int] = set()
        self.statement_findings: list[list[Finding]] = [[]]
        self.statement_stack: list = []
        self._class_stack: list = []
        self.annotation_depth = 0
        self.first_statement = None
        self.header_comments: set = set()
        self.namedtuple_calls: dict[int, Rule] = {}
        # id -> the node itself: holding it keeps the id from being reused by a later node (a docstring was dropped
        # as a leftover no-op when its string node got the id of a discarded `model.cpu()` result)
        self.identity_calls: dict[int, cst.CSTNode] = {}
        self.arg_stack: list[int] = []
        self.bool_names: list[set] = [set()]
        self.store_targets: set[int] = set()  # ids of assignment / del targets
        self.once_names: dict = {}  # id(statement) -> [(fresh name, value)]: values evaluated once before it
        self._file_names: Optional[set] = None  # every name the file uses, read when a fresh one is needed
        self._module: Optional[cst.Module] = None

    @property
    def project_layout_builders(self) -> Optional[frozenset]:
        """A project fact for plugins: kept on the context (`context.project_layout_builders`)."""
        return self.context.project_layout_builders

    @project_layout_builders.setter
    def project_layout_builders(self, value: Optional[frozenset]) -> None:
        self.context.project_layout_builders = value

    # ----- transform hooks -----------------------------------------------------------------
    # libcst looks `visit_<Type>` up by name for every node; resolving once per type is
    # measurably faster (docs/performance.md), and the per-attribute hooks are unused.
    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        entry = self._visit_dispatch.get(kind)
        if entry is None:
            name = kind.__name__
            entry = self._visit_dispatch[kind] = (getattr(self, f"visit_{name}", None), self._visit_hooks.get(name, ()))
        own, hooks = entry
        result = own(node) is not False if own is not None else True
        for hook in hooks:
            if hook(self.context, node) is False:
                result = False
        return result

    def on_leave(self, original_node, updated_node):
        kind = type(original_node)
        entry = self._leave_dispatch.get(kind)
        if entry is None:
            name = kind.__name__
            entry = self._leave_dispatch[kind] = (getattr(self, f"leave_{name}", None), self._leave_hooks.get(name, ()))
        own, hooks = entry
        result = own(original_node, updated_node) if own is not None else updated_node
        for hook in hooks:
            if not isinstance(result, cst.CSTNode):
                break
            result = hook(self.context, original_node, result)
        if self.once_names and id(original_node) in self.once_names:
            result = self._with_once_names(original_node, result)
        return result

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        return None

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        return None

    # ----- names ---------------------------------------------------------------------------
    def qualified_name(self, node: cst.BaseExpression) -> Optional[str]:
        chain = attribute_chain(node)
        if chain is None:
            return None
        root = self.scopes[-1].resolve(chain[0])
        if root is None:
            return None
        return ".".join([root, *chain[1:]])

    # ----- findings ------------------------------------------------------------------------
    def flag(self, node: cst.CSTNode, rule_id: str, kind: str, message: str, severity: str = "warning") -> None:
        message = _SENTINEL.sub(r"\1", message)  # generated code quoted in a message: the usual alias
        stmt = self.statement_stack[-1] if self.statement_stack else None
        self.statement_findings[-1].append(Finding(node, rule_id, kind, message, severity, tuple(self.arg_stack), stmt))

    def _shown(self, finding: Finding) -> Finding:
        shown = self._written_name(finding.node, finding.rule_id)
        if shown == finding.rule_id:
            return finding
        return dataclasses.replace(finding, rule_id=shown, table_id=finding.rule_id)

    def _written_name(self, node: cst.CSTNode, rule_id: str) -> str:
        """The id a flag shows: a rule of one torch name is shown by its id; a rule grouping several names under an id
        of its own (`torch.nn.BatchNormNd.class`, `torch.memory_formats`) by the name the user wrote there
        (`torch.nn.BatchNorm2d`, `torch.channels_last`, `torch.Tensor.index_put_` for a method), the first found in
        the flagged node; the id where none is (configuration and `ignore[...]` comments match both)."""
        rule = self.index.by_id.get(rule_id)
        if rule is None or not is_group_id(rule):
            return rule_id
        names = api_names(rule)
        queue, seen = [node], 0
        while queue and seen < 500:  # breadth first: the node itself, then what it contains
            current = queue.pop(0)
            seen += 1
            target = current.func if isinstance(current, cst.Call) else current
            if isinstance(target, (cst.Name, cst.Attribute)):
                qual = self.qualified_name(target)
                if qual in names:
                    return qual
                if qual is None and isinstance(target, cst.Attribute) and f"torch.Tensor.{target.attr.value}" in names:
                    return f"torch.Tensor.{target.attr.value}"
            queue.extend(current.children)
        return rule_id

    def _push_statement(self, node=None) -> None:
        self.statement_findings.append([])
        self.statement_stack.append(node)

    def _pop_statement(self, original: cst.CSTNode, updated):
        self.statement_stack.pop()
        found = self.statement_findings.pop()
        if not found:
            return updated
        # plugins match findings by the table's ids while the statement is converted; what is kept is shown by the
        # name the user wrote where the id is the table's own (`torch.nn.BatchNormNd.class` -> `torch.nn.BatchNorm2d`)
        found = [self._shown(f) for f in found]
        comments = _suppressions(original)
        if original is self.first_statement:
            comments += list(self.header_comments)
        kept = [f for f in found if not _is_suppressed(comments, f.rule_id) and not (f.table_id and _is_suppressed(comments, f.table_id))]
        self.findings.extend(kept)
        kept = [f for f in kept if f.severity != "info"]
        if not kept or isinstance(updated, cst.RemovalSentinel) or not hasattr(updated, "leading_lines"):
            return updated
        lines = list(updated.leading_lines)
        existing = {line.comment.value for line in lines if line.comment is not None}
        if original is self.first_statement:  # comments above it are in the module header (libcst)
            existing |= self.header_comments
        flagged_before = {c.split(":", 2)[1].strip() for c in existing if c.startswith("# torch2mlx: ") and c.count(":") >= 2}
        for f in kept:
            text = f"# torch2mlx: {f.rule_id}: {f.message}".replace("\n", " ")
            # a statement already marked for this rule (by an earlier conversion) gets no second mark
            if text not in existing and f.rule_id not in flagged_before and f.table_id not in flagged_before:
                existing.add(text)
                lines.append(cst.EmptyLine(comment=cst.Comment(text)))
        return updated.with_changes(leading_lines=lines)

    def visit_Module(self, node: cst.Module) -> None:
        self._module = node
        self.first_statement = node.body[0] if node.body else None
        self.header_comments = {line.comment.value for line in node.header if line.comment is not None}

    # ----- scopes --------------------------------------------------------------------------
    def _enter_scope(self, node: Union[cst.FunctionDef, cst.ClassDef]) -> bool:
        self.inner_attrs.add(id(node.name))
        scope = self.scope_list[self.scope_counter]
        self.scope_counter += 1
        self.scopes.append(scope)
        self.tensors.push()
        if scope.kind == "class":
            self._class_stack.append((self.tensors.submodules, self.tensors.attributes, self.tensors.tuple_methods))
            self.tensors.submodules = scope.submodules
            self.tensors.attributes = scope.tensor_attributes
            self.tensors.tuple_methods = scope.tensor_tuples
        self._push_statement(node)
        generated = any(line.comment is not None and is_generated_mark(line.comment.value)
                        for line in node.leading_lines)
        if not scope.interesting or generated:
            self.scope_counter += scope.nested_count
            return False
        if isinstance(node, cst.FunctionDef):
            for param in [*node.params.posonly_params, *node.params.params, *node.params.kwonly_params]:
                name = param.name.value
                self.tensors.mark(name, self.tensors.is_tensor_annotation(param.annotation) or name in scope.tensor_params)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return self._enter_scope(node)

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return self._enter_scope(node)

    def _leave_scope(self, original, updated):
        if self.scopes[-1].kind == "class":
            self.tensors.submodules, self.tensors.attributes, self.tensors.tuple_methods = self._class_stack.pop()
        self.scopes.pop()
        self.tensors.pop()
        return self._pop_statement(original, updated)

    leave_FunctionDef = _leave_scope
    leave_ClassDef = _leave_scope

    def visit_Import(self, node) -> bool:
        return False

    visit_ImportFrom = visit_Import

    # ----- statements ----------------------------------------------------------------------
    def visit_SimpleStatementLine(self, node) -> bool:
        self._push_statement(node)
        return self._visit_unless_cold(node)

    def _visit_unless_cold(self, node) -> bool:
        cold = self.cold.get(id(node))
        if cold is None:
            return True
        self.tensors.forget_assignments(cold)
        if not isinstance(node, cst.SimpleStatementLine):
            # the defs and classes inside a skipped compound statement (`if _load_library(...): def f(): ...`) are
            # scopes of `scope_list` too: skip them, or every later def/class would get the scope before it
            self.scope_counter += sum(isinstance(n, _SCOPES) for n in ast.walk(cold))
        return False

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        body = [s for s in updated.body if not self._is_leftover_noop(s)]
        if len(body) != len(updated.body):
            has_comment = any(line.comment is not None for line in updated.leading_lines)
            if not body and not has_comment:
                self.statement_findings.pop()
                self.statement_stack.pop()
                return cst.RemoveFromParent()
            if body:
                body[-1] = body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
                updated = updated.with_changes(body=body)
        return self._pop_statement(original, updated)

    def _is_leftover_noop(self, stmt: cst.BaseSmallStatement) -> bool:
        """`model.cuda()` -> `model` or `x = x.cpu()` -> `x = x`: drop what became a no-op."""
        if isinstance(stmt, cst.Expr) and self.identity_calls.get(id(stmt.value)) is stmt.value:
            return isinstance(stmt.value, (cst.Name, cst.Attribute, cst.SimpleString, cst.FormattedString))
        if isinstance(stmt, cst.Assign) and self.identity_calls.get(id(stmt.value)) is stmt.value and len(stmt.targets) == 1:
            # the same tree, not the same text: `self.x = self.x.cpu()`, `x[0] = x[0].cpu()`
            return stmt.targets[0].target.deep_equals(stmt.value)
        return False

    def leave_IndentedBlock(self, original, updated: cst.IndentedBlock):
        if not updated.body:
            return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
        return updated

    def _visit_compound(self, node) -> bool:
        self._push_statement(node)
        return self._visit_unless_cold(node)

    def _leave_compound(self, original, updated):
        return self._pop_statement(original, updated)

    visit_If = visit_While = visit_With = visit_Try = _visit_compound  # visit_For: below (also marks its target)
    leave_If = leave_For = leave_While = leave_With = leave_Try = _leave_compound

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        # what the value is known to be, before or after its translation: a second pass reads the
        # translation (`a, b = x.max(dim=0)` -> a tuple of `mx.*` calls), so the first must know it too
        is_tensor = self.tensors.is_tensor(original.value) or self.tensors.is_tensor(updated.value)
        is_bool = self.tensors.is_bool(original.value) or self.tensors.is_bool(updated.value)
        for target in original.targets:
            if isinstance(target.target, cst.Name):
                self.tensors.mark(target.target.value, is_tensor, is_bool)
            elif isinstance(target.target, (cst.Tuple, cst.List)):
                elements = target.target.elements
                # `q, k, v = qkv[0], qkv[1], qkv[2]`: element by element
                values = [self._elements(original.value, len(elements)), self._elements(updated.value, len(elements))]
                returned = self.tensors.tuple_elements(original.value)  # `a, b = f(x)`, f returning (tensor, ...)
                if returned is not None and (len(returned) != len(elements) or any(isinstance(e, cst.StarredElement) for e in elements)):
                    returned = None
                for i, el in enumerate(elements):
                    if isinstance(el.value, cst.Name) and is_tensor and not isinstance(el, cst.StarredElement):
                        self.tensors.mark(el.value.value, True)  # `a, b = x.chunk(2)`: an element of a tensor is one
                    elif isinstance(el.value, cst.Name):
                        known = any(v is not None and not isinstance(v[i], cst.StarredElement) and self.tensors.is_tensor(v[i].value)
                                    for v in values) or (returned is not None and returned[i])
                        self.tensors.mark(el.value.value, known)
        return updated

    @staticmethod
    def _elements(value: cst.BaseExpression, count: int) -> Optional[list]:
        """The elements of a tuple value unpacked into `count` names, or None."""
        return value.elements if isinstance(value, cst.Tuple) and len(value.elements) == count else None

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self.store_targets.add(id(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.store_targets.add(id(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.store_targets.add(id(node.target))

    def leave_AnnAssign(self, original: cst.AnnAssign, updated: cst.AnnAssign) -> cst.AnnAssign:
        if isinstance(original.target, cst.Name):
            known = self.tensors.is_tensor_annotation(original.annotation) or (
                original.value is not None and (self.tensors.is_tensor(original.value) or self.tensors.is_tensor(updated.value))
            )
            self.tensors.mark(original.target.value, known)
        return updated

    def visit_For(self, node: cst.For) -> bool:
        self._push_statement(node)
        if isinstance(node.target, cst.Name):
            self.tensors.mark(node.target.value, False)
        return self._visit_unless_cold(node)

    # ----- expressions ---------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        self.call_funcs.add(id(node.func))

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self.annotation_depth += 1

    def leave_Annotation(self, original: cst.Annotation, updated: cst.Annotation) -> cst.Annotation:
        self.annotation_depth -= 1
        return updated

    def visit_Arg(self, node: cst.Arg) -> None:
        self.arg_stack.append(id(node.value))
        if node.keyword is not None:
            self.inner_attrs.add(id(node.keyword))  # `f(cat=1)`: a keyword, not the name `cat`

    def visit_Param(self, node: cst.Param) -> None:
        self.inner_attrs.add(id(node.name))

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        self.arg_stack.pop()
        return updated

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.inner_attrs.add(id(node.value))
        self.inner_attrs.add(id(node.attr))  # `x.nn` is not a reference to a name `nn`

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if id(original) in self.call_funcs:
            return updated
        if isinstance(original.value, cst.Call) and id(original.value) in self.namedtuple_calls:
            rule = self.namedtuple_calls[id(original.value)]
            field = original.attr.value
            if field in rule.namedtuple:
                # torch's named tuple is a plain tuple in MLX, in the order of the rule's fields (unpacking relies on
                # the same order): the field is that item, `torch.sort(x).values` -> `mx.sort(x, axis=-1)`,
                # `torch.linalg.svd(A).S` -> `mx.linalg.svd(A, stream=mx.cpu)[1]`
                at = rule.namedtuple.index(field)
                if isinstance(updated.value, cst.Tuple):
                    return updated.value.elements[at].value
                return cst.Subscript(parenthesize(updated.value), [cst.SubscriptElement(cst.Index(cst.Integer(str(at))))])
        if self._torch_only_member(original.attr.value):
            if self._on_tensor(original.value):
                return self._tensor_attribute(original, updated)
            if isinstance(original.value, cst.Name) and self.index.attribute(original.attr.value) and self._is_plain_receiver(original.value):
                self.flag(original, f"Tensor.{original.attr.value}", "unknown-receiver",
                          f"`.{original.attr.value}` on `{original.value.value}`, not known to be a tensor: an mx.array has no "
                          f"`.{original.attr.value}` (for a tensor: {self.index.attribute(original.attr.value).why or 'mx.stop_gradient(x)'}); "
                          "annotate it `torch.Tensor` or translate by hand")
        if id(original) in self.inner_attrs:
            return updated
        return self._rewrite_value(original, updated)

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.Subscript:
        if len(original.slice) == 1 and isinstance(original.slice[0].slice, cst.Index):
            index = original.slice[0].slice.value
            # the index as translated too (`mask.to(device)` becomes `mask`): a second pass reads the translation
            indexes = [index] + [s.slice.value for s in updated.slice if len(updated.slice) == 1 and isinstance(s.slice, cst.Index)]
            mask_on_tensor = self.tensors.is_tensor(original.value) and any(self._is_bool_mask(i) for i in indexes)
            if mask_on_tensor or any(self.tensors.is_bool(i) for i in indexes):  # a boolean tensor index, whatever the receiver
                self.flag(original, "boolean-mask-indexing", "no-equivalent",
                          "boolean-mask indexing has a data-dependent shape and MLX raises on it; "
                          "use mx.where (or index with explicit positions)")
        return updated

    @staticmethod
    def _torch_only_member(name: str) -> bool:
        """A torch.Tensor member mx.array lacks (another name on a "tensor" means the fact is wrong)."""
        return name in TORCH_ONLY_MEMBERS

    def _on_tensor(self, value: cst.BaseExpression) -> bool:
        return self.tensors.is_tensor(value) and self._is_plain_receiver(value)

    def _tensor_attribute(self, original: cst.Attribute, updated: cst.Attribute):
        """`x.data` on a tensor: the table's attribute rule, or a flag (an mx.array has no such attribute)."""
        name = original.attr.value
        rule = self.index.attribute(name)
        if rule is None:
            self.flag_missing_member(original, name, called=False)
            return updated
        if rule.status == "manual" or rule.mlx is None:
            self.flag(original, rule.id, "no-equivalent", rule.why or "no exact MLX equivalent")
            return updated
        if id(original) in self.store_targets:
            self.flag(original, rule.id, "no-equivalent", f"assigning `.{name}` of an array: MLX arrays are immutable; assign a new array by hand")
            return updated
        self.converted += 1
        self.roots_used |= template_roots(rule.mlx)
        result = expand(rule.mlx, rule, Bound({"input": updated.value}))
        return result if is_atomic(result) else parenthesize(result)

    def flag_missing_member(self, node: cst.CSTNode, name: str, called: bool) -> None:
        """The closed world: a member of a known array that neither the table nor mx.array has."""
        what = f".{name}()" if called else f".{name}"
        self.flag(node, f"Tensor.{name}", "unknown-api", f"no MLX rule for Tensor.{name}, and an mx.array has no `{what}`: translate it by hand")

    def _is_bool_mask(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Comparison):
            return True
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.BitInvert):
            return self._is_bool_mask(node.expression) or self.tensors.is_bool(node.expression)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)):
            return self._is_bool_mask(node.left) or self._is_bool_mask(node.right)
        return self.tensors.is_bool(node)

    def leave_Name(self, original: cst.Name, updated: cst.Name):
        if id(original) in self.inner_attrs or id(original) in self.call_funcs:
            return updated
        return self._rewrite_value(original, updated)

    def _rewrite_value(self, original, updated):
        qual = self.qualified_name(original)
        if qual is None:
            return updated
        rule = self.index.value(qual)
        if rule is None:
            self.flag(original, qual, "unknown-api", f"no MLX rule for {qual}")
            return updated
        if rule.status == "manual" or rule.mlx is None:
            self.flag(original, rule.id, "no-equivalent", rule.why or "no exact MLX equivalent")
            return updated
        if rule.context == "annotation" and not self.annotation_depth:
            self.flag(original, rule.id, "semantics-differ", f"{qual} outside a type annotation: {rule.why or rule.notes}")
            return updated
        if rule.assumes:  # as for calls (_apply): e.g. torch.float64 -> mx.float64 (CPU stream only)
            self.flag(original, rule.id, "needs-review", f"converted assuming {rule.assumes}", "info")
        self.converted += 1
        self.roots_used |= template_roots(rule.mlx)
        return expand(rule.mlx, rule, Bound({}))

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        qual = self.qualified_name(original.func)
        receiver = None
        if qual is not None:
            rule = self.index.function(qual)
            if rule is None:
                if self.index.value(qual) is None:
                    self.flag(original, qual, "unknown-api", f"no MLX rule for {qual}")
                return updated
        elif isinstance(original.func, cst.Attribute):
            rule = self.index.method(original.func.attr.value)
            if rule is None:
                name = original.func.attr.value
                if self._torch_only_member(name) and self._on_tensor(original.func.value):
                    self.flag_missing_member(original, name, called=True)
                return updated
            if not self._receiver_is_tensor(original, rule):
                return updated
            assert isinstance(updated.func, cst.Attribute)
            receiver = updated.func.value
        else:
            return updated
        return self._apply(rule, original, updated, receiver)

    def _is_plain_receiver(self, recv: cst.BaseExpression) -> bool:
        """Not a literal, a module (torch's or another), or MLX's `x.at[...]` update idiom."""
        if isinstance(recv, _LITERAL_RECEIVERS):
            return False
        if isinstance(recv, cst.Name) and recv.value in ("self", "cls"):
            return False  # `self.norm(x)` calls a submodule or method, not Tensor.norm
        if isinstance(recv, cst.Call) and isinstance(recv.func, cst.Name) and recv.func.value in _BUILTIN_VALUES \
                and not any(recv.func.value in s.other or recv.func.value in s.imports for s in self.scopes):
            return False  # `slice(a, b).indices(n)`, `list(x).index(v)`: a Python builtin's value, never a tensor
        if isinstance(recv, cst.Subscript) and isinstance(recv.value, cst.Attribute) and recv.value.attr.value == "at":
            return False  # `x.at[i].add(v)`: already MLX
        chain = attribute_chain(recv)
        if chain is not None:
            if self.qualified_name(recv) is not None:
                return False  # a torch module or value, e.g. torch.nn.init
            head = chain[0]
            for scope in reversed(self.scopes):
                if head in scope.modules or head in scope.imports:  # a module, or a torch alias bound ambiguously
                    return False
        return True

    def _is_mlx_call(self, recv: cst.BaseExpression) -> bool:
        """`mx.take(...).reshape(shape)`, `mx.flatten(x).at[i].add(v).reshape(...)` as written in the source: MLX code
        (a translation's, converted again, or the user's own), a chain of mx.array members on an mx.* call's result,
        whose next method is mx.array's and means what MLX says; never read as torch's."""
        while isinstance(recv, (cst.Call, cst.Subscript, cst.Attribute)):
            if isinstance(recv, cst.Call):
                chain = attribute_chain(recv.func)
                if chain is not None:
                    return len(chain) >= 2 and self.tensors.is_mlx_core(chain[0])
                recv = recv.func
            else:
                recv = recv.value
        return False

    def _receiver_is_tensor(self, call: cst.Call, rule: Rule) -> bool:
        """True to rewrite; False to leave alone (flagging when it might be a tensor)."""
        recv = call.func.value  # type: ignore[attr-defined]
        if not self._is_plain_receiver(recv) or self._is_mlx_call(recv):
            return False
        if self.tensors.is_tensor(recv) or not rule.ambiguous_method:
            return True
        if any(a.keyword is not None and a.keyword.value in TORCH_KEYWORDS for a in call.args):
            return True
        method = call.func.attr.value  # type: ignore[attr-defined]
        if rule.mlx is not None and rule.mlx.startswith(f"{{input}}.{method}("):
            return False  # MLX arrays have the same method: leaving it is right for any receiver
        if rule.status == "manual" and method in BUILTIN_TYPE_METHODS:
            return False  # no translation either way; on an unknown receiver it is most likely dict.values() & co.
        name = f"Tensor.{method}"
        self.flag(call, rule.id, "unknown-receiver",
                  f"`.{call.func.attr.value}()` on a value not known to be a tensor; "  # type: ignore[attr-defined]
                  f"annotate it `torch.Tensor` or translate by hand ({name})")
        return False

    def _forget_findings_in_args_not_kept(self, original: cst.Call, updated: cst.Call, result) -> None:
        """After a handler: a flagged value inside an argument the translation does not keep is moot."""
        findings = self.statement_findings[-1]
        if not findings or not isinstance(result, cst.CSTNode):
            return
        kept: set = set()
        stack = [result]
        while stack:
            node = stack.pop()
            kept.add(id(node))
            stack.extend(node.children)
        dropped = {id(old.value) for old, new in zip(original.args, updated.args)
                   if id(new.value) not in kept and not _any_kept(new.value, kept)}
        if dropped:
            self.statement_findings[-1] = [f for f in findings if not dropped.intersection(f.inside_args)]

    def _forget_findings_in_dropped_args(self, rule: Rule, original: cst.Call, bound: Bound, template: str) -> None:
        """A flagged value inside an argument the translation dropped (device=..., memory_format=...) is moot."""
        findings = self.statement_findings[-1]
        if not findings:
            return
        used = set(template_placeholders(template))
        dropped = set()
        try:
            original_bound = bind(original.args, rule.signature, None if not isinstance(original.func, cst.Attribute) or self.qualified_name(original.func) else original.func.value)
        except Flag:
            return
        for name, value in original_bound.values.items():
            if name not in used or not bound.present(name):
                for v in (value if isinstance(value, list) else [value]):
                    dropped.add(id(v))
        if dropped:
            self.statement_findings[-1] = [f for f in findings if not dropped.intersection(f.inside_args)]

    def _translate(self, rule: Rule, original: cst.Call, updated: cst.Call, receiver):
        """(translation, MLX roots used) by the rule's handler or template; raises Flag."""
        if rule.handler is not None:
            result, roots = handlers.run(rule, original, updated, receiver, self.context)
            self._forget_findings_in_args_not_kept(original, updated, result)
            return result, roots
        assert rule.signature is not None
        bound = normalize(rule, bind(updated.args, rule.signature, receiver))
        template = choose_template(rule, bound)
        result = expand(template, rule, bound)
        self._forget_findings_in_dropped_args(rule, original, bound, template)
        return result, template_roots(template)

    def apply_rule(self, rule: Rule, original: cst.Call, updated: cst.Call, receiver=None) -> cst.BaseExpression:
        """Translate one call with one rule (for transforms); flags and returns `updated` if it can't."""
        return self._apply(rule, original, updated, receiver)

    def _apply(self, rule: Rule, original: cst.Call, updated: cst.Call, receiver) -> cst.BaseExpression:
        if rule.status == "manual":
            self.flag(original, rule.id, "no-equivalent", rule.why or "no exact MLX equivalent")
            return updated
        try:
            pending: list = []  # (position in the call, fresh name, value): values evaluated once, before the statement
            repeated: list = []  # literal arrays written as often as the translation reads them
            while True:
                try:
                    with duplicates_allowed(repeated):
                        result, roots = self._translate(rule, original, updated, receiver)
                    break
                except EvaluatedTwice as twice:
                    # `self.qkv(x).topk(2)`, `torch.frac(torch.tensor([...]))`: the receiver or argument the translation
                    # reads twice is evaluated once into a fresh name where that is exact; a literal array that cannot
                    # be (in a comprehension, ...) is written twice (two equal new arrays); anything else is flagged
                    if len(pending) + len(repeated) > len(original.args):
                        raise  # each argument (and the receiver) is named or repeated once at most: a handler's own value
                    try:
                        position, name, value, updated, receiver = self._evaluate_once(rule, original, updated, receiver, twice)
                    except EvaluatedTwice:
                        if not literal_array(twice.value) or any(v is twice.value for v in repeated):
                            raise
                        repeated.append(twice.value)
                        continue
                    pending.append((position, name, value))
            if pending:
                # receiver first, then the arguments in order: the order Python evaluates them in
                self.once_names.setdefault(id(self.statement_stack[-1]), []).extend((n, v) for _, n, v in sorted(pending, key=lambda p: p[0]))
        except Flag as flag:
            self.flag(original, rule.id, flag.kind, flag.reason)
            return updated
        if rule.assumes:
            self.flag(original, rule.id, "needs-review", f"converted assuming {rule.assumes}", "info")
        self.converted += 1
        self.roots_used |= roots
        if rule.namedtuple:
            self.namedtuple_calls[id(original)] = rule
        if isinstance(result, cst.Call) and result is not receiver and all(result is not a.value for a in updated.args):
            result = keep_line_breaks(updated, result)  # a call written over several lines stays so
        if original.lpar and not getattr(result, "lpar", None):
            result = result.with_changes(lpar=original.lpar, rpar=original.rpar)
        elif not is_atomic(result):
            result = parenthesize(result)
        if (receiver is not None and result is receiver) or any(result is a.value for a in updated.args):
            self.identity_calls[id(result)] = result  # `model.cpu()`, `torch._C._log_api_usage_once(self)`: nothing
        return result

    # ----- a receiver evaluated once, through a fresh local name ------------------------------------------
    def _evaluate_once(self, rule: Rule, original: cst.Call, updated: cst.Call, receiver, twice: EvaluatedTwice):
        """The call with the receiver or argument `twice` names replaced by a fresh local name, evaluated on a line
        before the statement: (position: -1 for the receiver, else the argument's index; the name; the value it is
        bound to; the new call; its receiver). Raises `twice` where that would not be exact."""
        if receiver is not None and twice.value is receiver and isinstance(original.func, cst.Attribute) \
                and isinstance(updated.func, cst.Attribute) and updated.func.value is receiver:
            name = self._once_name(rule, original.func.value, twice)
            fresh = cst.Name(name)
            return -1, name, receiver, updated.with_changes(func=updated.func.with_changes(value=fresh)), fresh
        # an argument: at module level (torch's docstring programs: `torch.frac(torch.tensor([...]))`) and in a function
        # body (`torch.topk(x.abs(), 2)`, `F.linear(x, w, b.exp() + 1)` in a forward); `_once_name` decides where it is exact
        for i, (before, after) in enumerate(zip(original.args, updated.args)):
            if after.value is twice.value and not after.star:
                name = self._once_name(rule, before.value, twice)
                args = list(updated.args)
                args[i] = after.with_changes(value=cst.Name(name))
                return i, name, after.value, updated.with_changes(args=args), receiver
        raise twice  # a value the handler built (`mx.broadcast_to(A, ...)`): not the source's

    def _once_name(self, rule: Rule, value: cst.BaseExpression, twice: EvaluatedTwice) -> str:
        """`self.qkv(x).topk(2, dim=-1)`: the translation reads the receiver twice. Where evaluating it once, on a
        line before the statement, is exact (`qkv = self.qkv(x)`), a fresh local name for it; else `twice` is raised.
        `value` is the receiver or argument as written (the original tree): it must be evaluated first in its
        statement, a statement of its own in a function or at module level (not a class body, whose names become
        attributes), outside `with` blocks and the parts of an expression that run conditionally or later (lambdas,
        comprehensions, `and` / `or`, `a if c else b`)."""
        stmt = self.statement_stack[-1] if self.statement_stack else None
        if (not _computed(value) or not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1
                or self.scopes[-1].kind not in ("function", "module")
                or not all(_keeps_statements(t) for t in self.transforms)
                or any(isinstance(s, cst.With) for s in self.statement_stack)
                or not evaluated_first(stmt.body[0], value)
                or any(_inside(f.node, value) for f in self.statement_findings[-1])
                or _marked(stmt, (rule.id, *api_names(rule)) if is_group_id(rule) else (rule.id,))):
            raise twice
        return self._fresh_name(value, twice.name)

    def _fresh_name(self, value, parameter: str = "") -> str:
        """A name the file uses nowhere for `value`, after what it computes (`qkv`, `x_abs`), else after the parameter
        it is passed as (`bias = b.exp() + 1`)."""
        if self._file_names is None:
            self._file_names = set(names_in(self._module)) if self._module is not None else set()
        func = value.func if isinstance(value, cst.Call) else None
        if isinstance(value, cst.Subscript):
            base = f"{value.value.value}_part" if isinstance(value.value, cst.Name) else "part"  # `x_part = x[..., 0]`
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            base = func.attr.value  # a submodule's output: `qkv = self.qkv(x)`
        elif isinstance(func, cst.Attribute) and self.qualified_name(func) is not None:
            base = func.attr.value  # a torch function's result: `matmul = torch.matmul(a, b)`
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            base = f"{func.value.value}_{func.attr.value}"  # `scores_view = scores.view(...)`
        elif parameter.isidentifier() and parameter not in _RESERVED and not _NUMBERED.fullmatch(parameter):
            base = parameter  # `bias = b.exp() + 1` for F.linear's bias, `sz = len(x)`
        elif isinstance(value, cst.Comparison):
            base = "mask"  # `mask = x > 0`
        elif isinstance(func, cst.Name):
            base = f"{func.value}_out"
        else:
            base = "value"
        base = base.lstrip("_") or "value"
        if base in _RESERVED:
            base = f"{base}_value"  # torch.complex(x, y): `complex_value`, not a numbered builtin's name
        name, n = base, 1
        while name in self._file_names or name in _RESERVED or self.context.has_helper(name):
            n += 1
            name = f"{base}_{n}"
        self._file_names.add(name)
        return name

    def _with_once_names(self, original: cst.SimpleStatementLine, result):
        """The statement, after the lines that evaluate its receivers once (they take its comments above it)."""
        pending = self.once_names.pop(id(original))
        if isinstance(result, cst.RemovalSentinel):
            return result
        statements = list(result.nodes) if isinstance(result, cst.FlattenSentinel) else [result]
        first = statements[0]
        kept = len(original.leading_lines)  # the user's lines above it; lines after these are flags just added
        # `complex_value = x + 1j * y`: the parentheses a translation put around an operation are no use on its own line
        lines = [cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))],
                                                     value.with_changes(lpar=[], rpar=[]) if isinstance(value, _BARE) else value)])
                 for name, value in pending]
        if isinstance(first, cst.SimpleStatementLine):
            lines[0] = lines[0].with_changes(leading_lines=first.leading_lines[:kept])
            statements[0] = first.with_changes(leading_lines=first.leading_lines[kept:])
        return cst.FlattenSentinel([*lines, *statements])


# transforms of the training and data packages that rewrite expressions in place, never moving statements: with any
# other of those on the file (training steps move statements into `def loss_fn`), a value is not evaluated through a
# new line (`_keeps_statements`); no-grad only
# drops decorators and unwraps `with` blocks (a receiver inside a `with` stays: a no_grad block in a forward is
# translated statement by statement)
_ONCE_TRANSFORMS = frozenset({"nn-module", "nn-layer-values", "jit-markers", "nn-init", "nn-layout", "nn-script-layers",
                              "nn-conv-checks", "inplace-op", "nn-inplace-activation", "runtime-values", "no-grad",
                              # training transforms that rewrite a statement or loop where it stands (an optimizer's
                              # parameter groups, `p.requires_grad = False` loops, EMA loops over state dicts): active
                              # wherever a model file mentions parameters, so every model file of transformers with
                              # `requires_grad` or `state_dict` kept `torch.topk(x[..., 0], k)` flagged
                              "optim-groups", "freeze-parameters", "ema-update",
                              # `with torch.autocast(...)` removed, its body put where it stood (statements inside a
                              # `with` get no line before them anyway); `@autocast` decorators dropped
                              "autocast"})
# the packages whose transforms restructure a script (a training step's statements move into `def loss_fn`, a
# data loop is rewritten): a line put before a statement there could end up outside the function the statement
# moves into. Transforms of the other packages (module classes, layout, facts, values, runtime, init, in-place
# updates) rewrite expressions and statements where they are.
_MOVING_PACKAGES = ("torch2mlx.transforms.training.", "torch2mlx.transforms.data.")


def _keeps_statements(transform) -> bool:
    return transform.id in _ONCE_TRANSFORMS or not type(transform).__module__.startswith(_MOVING_PACKAGES)


_BUILTIN_VALUES = frozenset({"slice", "range", "str", "int", "float", "bool", "complex", "list", "tuple", "dict", "set",
                             "frozenset", "bytes", "len", "repr", "enumerate", "zip", "map", "filter", "reversed",
                             "sorted", "iter"})
_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset({"self", "cls"})


def api_names(rule: Rule) -> frozenset:
    """The torch names a rule covers, as a flag shows them: functions, values, `torch.Tensor.<member>`."""
    return frozenset((*rule.functions, *rule.values, *(f"torch.Tensor.{m}" for m in (*rule.methods, *rule.attributes))))


def is_group_id(rule: Rule) -> bool:
    """The rule's id names none of its torch APIs (`torch.nn.BatchNormNd.class`, `torch.storage_objects`): an id of the
    table's, not a name the user wrote (`Tensor.to`, `torch.Tensor.masked_scatter` are)."""
    names = api_names(rule)
    return rule.id not in names and f"torch.{rule.id}" not in names


def _marked(stmt: cst.SimpleStatementLine, rule_ids: tuple) -> bool:
    """An earlier conversion flagged the statement for this rule (by its id or, for a group rule, a name it covers): a
    second one keeps it as it is (the first may have run transforms this one does not, which kept the receiver
    where it was)."""
    marks = tuple(f"# torch2mlx: {rule_id}:" for rule_id in rule_ids)
    return any(line.comment is not None and line.comment.value.startswith(marks) for line in stmt.leading_lines)


_NUMBERED = re.compile(r"t\d+")  # the table's names for the items of `*tensors` (torch.dist's t0): no name for a value


def _computed(value: cst.BaseExpression) -> bool:
    """A value a translation reading it twice evaluates once, into a fresh local name: a call's result or an item
    (`self.qkv(x)`, `x[..., 0]`), arithmetic or a comparison (`b + 1` in `F.linear(x, w, b + 1)`, `torch.frac(x * 3)`,
    `-x`, `x > 0`), an attribute of one (`self.proj(x).T`). Names, attribute chains and literals are read twice as
    written (`is_simple`); where moving the value out of its statement is not exact, `_once_name` refuses."""
    if isinstance(value, (cst.Call, cst.Subscript, cst.BinaryOperation, cst.UnaryOperation, cst.Comparison)):
        return True
    if isinstance(value, cst.Attribute):
        return _computed(value.value)
    return False


def _inside(node, root: cst.CSTNode) -> bool:
    if node is root:
        return True
    return any(_inside(node, child) for child in root.children)


_PURE_OPERATIONS = (cst.BinaryOperation, cst.UnaryOperation)
_BARE = (cst.BinaryOperation, cst.UnaryOperation, cst.Comparison, cst.BooleanOperation)  # need no parentheses as a value


def evaluated_first(small: cst.BaseSmallStatement, target: cst.BaseExpression) -> bool:
    """`target` is evaluated once, unconditionally, by `small`, and nothing with an effect is evaluated before
    it (names, attributes, literals and arithmetic of them may be: evaluating `target` earlier changes none of
    them), so that evaluating it on a line before the statement changes nothing."""
    if isinstance(small, (cst.Assign, cst.Return, cst.Expr)) or (isinstance(small, cst.AnnAssign) and small.value is not None):
        return small.value is not None and _evaluation(small.value, target) == _FOUND
    return False


_FOUND, _CLEAN, _DIRTY = "found", "clean", "dirty"


def _evaluation(node, target) -> str:
    """_FOUND: `target` reached in Python's evaluation order with only effect-free evaluations before it;
    _CLEAN: `node` evaluated entirely, without `target` and without effects; _DIRTY otherwise."""
    if node is target:
        return _FOUND
    if isinstance(node, (cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis)):
        return _CLEAN
    if isinstance(node, cst.Attribute):
        return _evaluation(node.value, target)
    parts: list
    if isinstance(node, cst.Subscript):
        parts = [node.value]
        for element in node.slice:
            index = element.slice
            parts += [index.value] if isinstance(index, cst.Index) else [p for p in (index.lower, index.upper, index.step) if p]
    elif isinstance(node, cst.Call):
        parts = [node.func, *(a.value for a in node.args)]
        outcome = _sequence(parts, target)
        return _DIRTY if outcome == _CLEAN else outcome  # the call itself may have effects
    elif isinstance(node, _PURE_OPERATIONS):
        parts = [node.left, node.right] if isinstance(node, cst.BinaryOperation) else [node.expression]
    elif isinstance(node, (cst.Tuple, cst.List, cst.Set)):
        parts = [e.value for e in node.elements]
    elif isinstance(node, cst.Comparison):
        # a chained comparison evaluates its later operands only when the earlier ones held
        first = _sequence([node.left, node.comparisons[0].comparator], target)
        if first != _CLEAN or len(node.comparisons) == 1:
            return first
        return _DIRTY if any(_inside(target, c.comparator) for c in node.comparisons[1:]) else _CLEAN
    elif isinstance(node, cst.BooleanOperation):
        # the right operand is evaluated only on some values of the left
        left = _evaluation(node.left, target)
        return left if left != _CLEAN else (_DIRTY if _inside(target, node.right) else _CLEAN)
    elif isinstance(node, cst.IfExp):
        test = _evaluation(node.test, target)
        return test if test != _CLEAN else (_DIRTY if _inside(target, node.body) or _inside(target, node.orelse) else _CLEAN)
    else:
        return _DIRTY  # lambdas, comprehensions, f-strings, walrus, await ...: not followed
    return _sequence(parts, target)


def _sequence(parts: list, target) -> str:
    for part in parts:
        outcome = _evaluation(part, target)
        if outcome != _CLEAN:
            return outcome
    return _CLEAN
