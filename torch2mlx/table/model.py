"""The rule table's data model: frozen dataclasses built from validated YAML."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Param:
    name: str
    default: Optional[str]  # source text of the torch default, None when required
    kind: str  # "positional", "varargs", "keyword"


@dataclass(frozen=True)
class Signature:
    """A torch signature, parsed from the rule's `signature:` string."""

    params: tuple[Param, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> "Signature":
        fn = ast.parse(f"def _sig({text}): pass").body[0]
        assert isinstance(fn, ast.FunctionDef)
        a = fn.args
        params: list[Param] = []
        positional = a.posonlyargs + a.args
        defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        for arg, default in zip(positional, defaults):
            params.append(Param(arg.arg, ast.unparse(default) if default is not None else None, "positional"))
        if a.vararg is not None:
            params.append(Param(a.vararg.arg, None, "varargs"))
        for arg, default in zip(a.kwonlyargs, a.kw_defaults):
            params.append(Param(arg.arg, ast.unparse(default) if default is not None else None, "keyword"))
        if a.kwarg is not None:
            raise ValueError("**kwargs is not allowed in a rule signature")
        return cls(tuple(params), text)

    def get(self, name: str) -> Optional[Param]:
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


@dataclass(frozen=True)
class ParamSpec:
    unsupported: Optional[str] = None
    drop: bool = False
    always_write: bool = False
    values: Optional[dict] = None
    require: Optional[str] = None
    why: Optional[str] = None


@dataclass(frozen=True)
class Variant:
    when: tuple[tuple[str, str], ...]
    mlx: str


@dataclass(frozen=True)
class Example:
    torch: str
    mlx: Optional[str] = None
    flagged: bool = False
    inputs: dict = field(default_factory=dict, hash=False, compare=False)
    compare: str = "values"
    annotate: bool = True
    note: Optional[str] = None
    module: bool = False  # the code runs at module level, not in `def example` (docs/writing-rules.md)


@dataclass(frozen=True)
class Rule:
    id: str
    status: str  # exact | conditional | manual
    functions: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()  # Tensor attributes (x.data)
    ambiguous_method: bool = False
    signature: Optional[Signature] = None
    mlx: Optional[str] = None
    variants: tuple[Variant, ...] = ()
    condition: Optional[str] = None
    assumes: Optional[str] = None
    why: Optional[str] = None
    handler: Optional[str] = None
    returns: str = "tensor"
    context: Optional[str] = None
    namedtuple: tuple[str, ...] = ()
    params: dict = field(default_factory=dict, hash=False, compare=False)
    notes: Optional[str] = None
    examples: tuple[Example, ...] = ()
    source: str = ""  # "file:line" of the entry, for error messages

    def spec(self, param: str) -> ParamSpec:
        return self.params.get(param) or ParamSpec()
