"""`if` / `for` / `while` in a forward over channels-last values (part of nn-layout).

Each branch of an `if` is followed from the layouts before it; where the branches end, a name
keeps its layout when they agree. Where one branch leaves it channels-last and the other in torch's
layout, the torch-layout branch ends with a transpose to channels-last (`if`/`else`), or the body
ends with a transpose back to the layout it had before (an `if` without `else`): any tensor of that
rank is the same torch value in either form (a value of another rank makes mx.transpose raise,
never silently wrong). A (N, 1, 1, C) map and a feature map merge as a feature map. A branch that
ends in `return` / `raise` does not reach the join. Other disagreements are flagged (set unknown,
"?"). A name bound on one path only keeps that path's layout (the other path cannot read it). A loop body
is followed once: it must leave every name it changes in the layout it had on entry (else the
second time round would see another layout) - `x = block(x)` over `for block in self.blocks`
(an nn.ModuleList of channels-last blocks) keeps `x` channels-last. A test or an iterable that
depends on the axis order is analysed like any expression (`if x.size(1) == 3:` is remapped).
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.template import sentinel
from torch2mlx.transforms.layout.ops import RANK, UNKNOWN
from torch2mlx.layout_facts import Layout, ModuleList
from torch2mlx.transforms.layout.tables import TO_CL, TO_TORCH

RULE = "nn-layout"


class LayoutFlow:
    """Mixed into NnLayoutTransform: `state`, `frames`, `layers`, `loop_modules`, `_layout` are its."""

    def _merge(self, rw, node, first: dict, second: dict, first_block=None, second_block=None,
               before: Optional[dict] = None, ranks: tuple = ({}, {})) -> dict:
        """The layouts where two paths join; `first_block` / `second_block` (the branch bodies, None for the path
        that skips the body) get a transpose at their end where that reconciles a name of known rank (`ranks`:
        the ranks of torch-layout names at the end of each path)."""
        merged = {}
        known = before if before is not None else {}
        for name in dict.fromkeys([*first, *second]):  # source order, not a set's (hash-seeded): join fixes are lines
            if before is not None and name not in known and (name not in first or name not in second):
                merged[name] = first.get(name, second.get(name))  # bound on one path only
                continue
            a, b = first.get(name, Layout.PLAIN), second.get(name, Layout.PLAIN)
            if a == b:
                merged[name] = a
            elif Layout.UNKNOWN in (a, b):
                merged[name] = Layout.UNKNOWN  # flagged where it became unknown: later reads are notes, not new flags
            elif {a, b} == {Layout.POOLED, Layout.CL2}:
                merged[name] = Layout.CL2  # a (N, 1, 1, C) map is a feature map stored the same way
            elif {a, b} & {Layout.PLAIN} and {a, b} - {Layout.PLAIN} <= set(TO_CL) | {Layout.POOLED} \
                    and ranks[0 if a == Layout.PLAIN else 1].get(name) == RANK[a if a != Layout.PLAIN else b]:
                merged[name] = self._reconcile(name, a, b, first_block, second_block)
            else:
                merged[name] = Layout.MIXED  # flagged where it is used next
        return merged

    def _reconcile(self, name: str, a: str, b: str, first_block, second_block) -> str:
        """One path channels-last, the other in torch's layout: a transpose at the end of a branch body."""
        layout = Layout.CL2 if Layout.POOLED in (a, b) else (a if a != Layout.PLAIN else b)
        if a == Layout.PLAIN and first_block is not None:
            self.join_fix.setdefault(id(first_block), []).append((name, TO_CL[layout]))
            return layout
        if b == Layout.PLAIN and second_block is not None:
            self.join_fix.setdefault(id(second_block), []).append((name, TO_CL[layout]))
            return layout
        # the plain path skips the body (an `if` without `else`): the body ends in torch's layout
        block = first_block if first_block is not None else second_block
        if block is None:
            return Layout.MIXED
        self.join_fix.setdefault(id(block), []).append((name, TO_TORCH[layout]))
        return Layout.PLAIN

    def _check_test(self, rw, test) -> None:
        if self._layout(rw, test) != Layout.PLAIN:
            self._doubt(rw, test)

    # ----- if / elif / else --------------------------------------------------------------------
    def enter_if(self, rw, node: cst.If) -> None:
        if self.state is None:
            return
        top = self.frames[-1] if self.frames else None
        if top is not None and top["node"].orelse is node:  # an elif: the enclosing if's body is done
            top["body_end"], self.state = self.state, dict(top["before"])
            top["ranks_end"], self.ranks = self.ranks, dict(top["ranks"])
        self._check_test(rw, node.test)
        self.frames.append({"node": node, "before": dict(self.state), "body_end": None, "ranks": dict(self.ranks)})

    def enter_else(self, rw, node: cst.Else) -> None:
        if self.state is None or not self.frames:
            return
        top = self.frames[-1]
        top["body_end"], self.state = self.state, dict(top["before"])
        top["ranks_end"], self.ranks = self.ranks, dict(top["ranks"])

    def exit_if(self, rw, node: cst.If) -> None:
        if self.state is None or not self.frames or self.frames[-1]["node"] is not node:
            return
        frame = self.frames.pop()
        orelse = node.orelse
        if frame["body_end"] is None:  # no else: the body may not run
            ranks = (self.ranks, frame["ranks"])
            if _ends(node.body):
                self.state = dict(frame["before"])
            else:
                self.state = self._merge(rw, node, self.state, frame["before"], node.body, None, frame["before"], ranks)
        else:
            body_end, else_end = frame["body_end"], self.state
            ranks = (frame["ranks_end"], self.ranks)
            if _ends(node.body):
                self.state, ranks = else_end, (self.ranks, self.ranks)
            elif isinstance(orelse, cst.Else) and _ends(orelse.body):
                self.state, ranks = body_end, (frame["ranks_end"], frame["ranks_end"])
            else:  # an elif chain is merged as a whole: a transpose goes at the end of the `if` body only
                else_block = orelse.body if isinstance(orelse, cst.Else) else None
                self.state = self._merge(rw, node, body_end, else_end, node.body, else_block, frame["before"], ranks)
        self.ranks = {k: v for k, v in ranks[0].items() if ranks[1].get(k) == v}

    # ----- for / while ------------------------------------------------------------------------
    def enter_loop(self, rw, node) -> None:
        if self.state is None:
            return
        if isinstance(node, cst.For):
            self._loop_target(rw, node)
        else:
            self._check_test(rw, node.test)
        self.frames.append({"node": node, "before": dict(self.state)})
        self.ranks = {}  # a loop body may run more than once: ranks of torch-layout names are not followed there

    def _loop_target(self, rw, node: cst.For) -> None:
        """`for block in self.blocks:` over channels-last blocks: `block(x)` is followed like `self.conv(x)`."""
        it, target = node.iter, node.target
        kind = None
        if isinstance(it, cst.Attribute) and isinstance(it.value, cst.Name) and it.value.value == "self":
            kind = (self.layers or {}).get(it.attr.value)
        if isinstance(kind, ModuleList) and isinstance(target, cst.Name):
            self.loop_modules[target.value] = kind.of
            self.state[target.value] = Layout.PLAIN
            return
        if self._layout(rw, it) != Layout.PLAIN:
            self._doubt(rw, it)
        for name in _bound_names(target):
            self.state[name] = Layout.PLAIN

    def exit_loop(self, rw, node) -> None:
        if self.state is None or not self.frames or self.frames[-1]["node"] is not node:
            return
        frame = self.frames.pop()
        if isinstance(node, cst.For) and isinstance(node.target, cst.Name):
            self.loop_modules.pop(node.target.value, None)
        if node.orelse is not None and any(v != Layout.PLAIN for v in self.state.values()):
            rw.flag(node.iter if isinstance(node, cst.For) else node.test, RULE, "needs-review",
                    "a loop's else branch over channels-last values is not followed")
        header = node.iter if isinstance(node, cst.For) else node.test
        for name, before in frame["before"].items():
            after = self.state.get(name, Layout.PLAIN)
            if after != before and UNKNOWN in (before, after):
                # the value's layout was given up on a flagged line (one cause, one warning): it stays unknown, and
                # what reads it is kept as written
                rw.flag(header, RULE, "needs-review", f"left as written: `{name}` may be channels-last or not after "
                        "this loop; the line where that began is flagged: resolve that one", "info")
                self.state[name] = UNKNOWN
            elif after != before:
                rw.flag(header, RULE, "needs-review", f"the loop takes `{name}` from {_words(before)} to {_words(after)}, "
                        "so its next pass would read it in the other layout: convert this loop by hand, keeping "
                        f"`{name}` in one layout from pass to pass (e.g. transpose it back at the end of the body)")
                self.state[name] = UNKNOWN  # flagged here (one cause, one warning): later reads are notes


def _words(layout) -> str:
    """A layout in a user's words (`Layout.words`)."""
    return getattr(layout, "words", "an unknown layout")


def _ends(block) -> bool:
    """A branch body whose last statement returns or raises: it never reaches the join."""
    body = getattr(block, "body", None)
    last = body[-1] if body else None
    return isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], (cst.Return, cst.Raise))


def with_join_fixes(block: cst.IndentedBlock, fixes: list) -> cst.IndentedBlock:
    """`name = mx.transpose(name, perm)` appended to a branch body (see LayoutFlow._reconcile)."""
    mx = sentinel("mx")
    lines = [cst.parse_statement(f"{name} = {mx}.transpose({name}, {perm})") for name, perm in fixes]
    return block.with_changes(body=[*block.body, *lines])


def _bound_names(target) -> list:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _bound_names(el.value)]
    return []
