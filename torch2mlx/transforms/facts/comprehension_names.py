"""The names a comprehension or a lambda binds are its own (id `comprehension-names`).

Python 3 gives a comprehension (and a lambda) its own scope: in `[x.split('_') for x in names]` the `x` is each
of `names`, not the tensor `x` of the enclosing function, and after the comprehension `x` is the function's again.
The pass keeps one set of tensor names per function (`tensors.TensorFacts`), so without this the comprehension's
`x` was read as the function's tensor and `x.split('_')` translated as Tensor.split: silently wrong. Here, while
the pass is inside a comprehension or lambda, its targets and parameters are unknown, except a target iterating
a tuple or list display every element of which is a tensor (`[s.view(shape) for s in (query, key, value)]`,
transformers' falcon / bailing_hybrid), which is a tensor; the enclosing scope's facts are restored on leaving.
`tensors.TensorFacts.tuple_elements` reads such a comprehension unpacked into names
(`q, k, v = [s.view(shape) for s in (q, k, v)]`): one element per element of the display, each a tensor when the
element expression is one.

The first `for`'s iterable is evaluated in the enclosing scope, but the pass visits it inside the comprehension,
after the element: a name there spelled like a target is read as unknown (a flag, never a wrong translation).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform

_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)


def _target_names(target: cst.BaseExpression) -> list:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []  # `for a.b in ...`, `for a[i] in ...` bind no name


def tensor_display(tensors, iterable: cst.BaseExpression) -> bool:
    """A tuple or list display (no starred element) every element of which is a tensor."""
    return (isinstance(iterable, (cst.Tuple, cst.List)) and bool(iterable.elements)
            and all(isinstance(e, cst.Element) and tensors.is_tensor(e.value) for e in iterable.elements))


class ComprehensionNames(Transform):
    id = "comprehension-names"
    description = "a comprehension's or lambda's own names are not the enclosing function's"
    order = 1  # before any transform reading tensor facts inside the comprehension

    def __init__(self) -> None:
        self.saved: list = []

    def _enter(self, rw, node) -> None:
        tensors = rw.tensors
        marks: dict = {}
        if isinstance(node, cst.Lambda):
            params = node.params
            for p in [*params.posonly_params, *params.params, *params.kwonly_params]:
                marks[p.name.value] = False
            for star in (params.star_arg, params.star_kwarg):
                if isinstance(star, cst.Param):
                    marks[star.name.value] = False
        else:
            comp = node.for_in
            while comp is not None:
                names = _target_names(comp.target)
                is_tensor = isinstance(comp.target, cst.Name) and tensor_display(tensors, comp.iter)
                for name in names:
                    marks[name] = is_tensor
                comp = comp.inner_for_in
        self.saved.append(tensors.save(marks))
        for name, is_tensor in marks.items():
            tensors.mark(name, is_tensor)

    def _leave(self, rw) -> None:
        rw.tensors.restore(self.saved.pop())

    def visit_ListComp(self, rw, node) -> None:
        self._enter(rw, node)

    def visit_SetComp(self, rw, node) -> None:
        self._enter(rw, node)

    def visit_GeneratorExp(self, rw, node) -> None:
        self._enter(rw, node)

    def visit_DictComp(self, rw, node) -> None:
        self._enter(rw, node)

    def visit_Lambda(self, rw, node) -> None:
        self._enter(rw, node)

    def leave_ListComp(self, rw, original, updated):
        self._leave(rw)
        return updated

    def leave_SetComp(self, rw, original, updated):
        self._leave(rw)
        return updated

    def leave_GeneratorExp(self, rw, original, updated):
        self._leave(rw)
        return updated

    def leave_DictComp(self, rw, original, updated):
        self._leave(rw)
        return updated

    def leave_Lambda(self, rw, original, updated):
        self._leave(rw)
        return updated
