"""`if` / `for` / `while` in a forward over channels-last values (part of nn-layout).

Each branch of an `if` is followed from the layouts before it; where the branches end, a name
keeps its layout when they agree and is flagged (set unknown, "?") when they do not. A loop body
is followed once: it must leave every name it changes in the layout it had on entry (else the
second time round would see another layout) - `x = block(x)` over `for block in self.blocks`
(an nn.ModuleList of channels-last blocks) keeps `x` channels-last. A test or an iterable that
depends on the axis order is analysed like any expression (`if x.size(1) == 3:` is remapped).
"""
from __future__ import annotations

import libcst as cst

RULE = "nn-layout"


class LayoutFlow:
    """Mixed into NnLayoutTransform: `state`, `frames`, `layers`, `loop_modules`, `_layout` are its."""

    def _merge(self, rw, node, first: dict, second: dict) -> dict:
        merged = {}
        for name in first.keys() | second.keys():
            a, b = first.get(name, "plain"), second.get(name, "plain")
            merged[name] = a if a == b else "?"  # flagged where it is used next
        return merged

    def _check_test(self, rw, test) -> None:
        if self._layout(rw, test) != "plain":
            self._doubt(rw, test)

    # ----- if / elif / else --------------------------------------------------------------------
    def enter_if(self, rw, node: cst.If) -> None:
        if self.state is None:
            return
        top = self.frames[-1] if self.frames else None
        if top is not None and top["node"].orelse is node:  # an elif: the enclosing if's body is done
            top["body_end"], self.state = self.state, dict(top["before"])
        self._check_test(rw, node.test)
        self.frames.append({"node": node, "before": dict(self.state), "body_end": None})

    def enter_else(self, rw, node: cst.Else) -> None:
        if self.state is None or not self.frames:
            return
        top = self.frames[-1]
        top["body_end"], self.state = self.state, dict(top["before"])

    def exit_if(self, rw, node: cst.If) -> None:
        if self.state is None or not self.frames or self.frames[-1]["node"] is not node:
            return
        frame = self.frames.pop()
        if frame["body_end"] is None:  # no else: the body may not run
            self.state = self._merge(rw, node, self.state, frame["before"])
        else:
            self.state = self._merge(rw, node, frame["body_end"], self.state)

    # ----- for / while ------------------------------------------------------------------------
    def enter_loop(self, rw, node) -> None:
        if self.state is None:
            return
        if isinstance(node, cst.For):
            self._loop_target(rw, node)
        else:
            self._check_test(rw, node.test)
        self.frames.append({"node": node, "before": dict(self.state)})

    def _loop_target(self, rw, node: cst.For) -> None:
        """`for block in self.blocks:` over channels-last blocks: `block(x)` is followed like `self.conv(x)`."""
        it, target = node.iter, node.target
        kind = None
        if isinstance(it, cst.Attribute) and isinstance(it.value, cst.Name) and it.value.value == "self":
            kind = (self.layers or {}).get(it.attr.value)
        if isinstance(kind, str) and kind.startswith("list:") and isinstance(target, cst.Name):
            self.loop_modules[target.value] = kind[5:]
            self.state[target.value] = "plain"
            return
        if self._layout(rw, it) != "plain":
            self._doubt(rw, it)
        for name in _bound_names(target):
            self.state[name] = "plain"

    def exit_loop(self, rw, node) -> None:
        if self.state is None or not self.frames or self.frames[-1]["node"] is not node:
            return
        frame = self.frames.pop()
        if isinstance(node, cst.For) and isinstance(node.target, cst.Name):
            self.loop_modules.pop(node.target.value, None)
        if node.orelse is not None and any(v != "plain" for v in self.state.values()):
            rw.flag(node.iter if isinstance(node, cst.For) else node.test, RULE, "needs-review",
                    "a loop's else branch over channels-last values is not followed")
        header = node.iter if isinstance(node, cst.For) else node.test
        for name, before in frame["before"].items():
            after = self.state.get(name, "plain")
            if after != before:
                rw.flag(header, RULE, "needs-review", f"the loop changes the layout of `{name}` ({before} -> {after}): "
                        "its second pass would see another layout")
                self.state[name] = "?"


def _bound_names(target) -> list:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _bound_names(el.value)]
    return []
