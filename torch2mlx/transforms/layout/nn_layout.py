"""Channels-last activations in module classes that use convolutions, pooling or batch norm.

**What it does**: MLX's Conv/Pool/BatchNorm layers take (N, H, W, C) (or (N, L, C)), torch's
(N, C, H, W). In a module class whose `__init__` builds such a layer, the converted `__call__`
takes its tensor arguments channels-last and keeps feature maps channels-last. The transform
follows, statement by statement, which local names hold channels-last values and remaps what
depends on the axis order:
- `x.view(x.size(0), -1)`, `x.reshape(x.shape[0], -1)`, `x.flatten(1)`, `torch.flatten(x, 1)` of
  a feature map: `x` is first transposed back to channels-first, so torch's Linear weights stay
  valid (not after `AdaptiveAvgPool2d(1)`: a 1x1 map flattens the same either way);
- `x.reshape(n, c, length)` / `x.view(...)` of a (N, H, W, C) map (ViT's patch embedding): torch's (N, C, H*W) is
  MLX's (N, H*W, C), a (N, L, C) value; `reshape_channels_last` checks at run time that (n, c, length) is
  (N, C, H*W) (any other reshape mixes channels and positions differently in the two layouts: it raises);
- `torch.cat([a, b], dim=1)` -> the last axis; `x.shape[i]` / `x.size(i)` -> the matching
  channels-last axis; `N, C, H, W = x.shape` binds the names in MLX's order;
- permutes, transposes, `flatten(2)`, reductions, channel indexing, `chunk`/`split` are remapped
  axis by axis (`ops.py`): `x.permute(0, 2, 3, 1)` and `x.flatten(2).transpose(1, 2)`
  need no transpose at all in MLX; `y.permute(0, 3, 1, 2)` of a plain NHWC value is channels-last;
- `if`/`else` and loops are followed (`flow.py`), `for block in self.blocks` included;
- a plain (torch-layout) value fed to a channels-last layer is transposed there.
The class gets a comment saying which layout it takes and returns. Submodules count by what they
do to a layout (`tables.py`): layers, Sequential/ModuleList of them, classes of this file
proven to keep feature maps channels-last (also a LayerNorm2d written with permutes, which then
becomes channels-last itself), layers passed to `__init__` by this file's constructor calls, and
layer factories such as `def conv3x3(...): return nn.Conv2d(...)`.
`nn.Upsample`, `nn.GroupNorm`, `nn.PixelShuffle` / `PixelUnshuffle` are channels-last in MLX too:
they make a class channels-last and keep the layout of their input (a (N, 1, 1, C) map becomes a
real feature map). `nn.AdaptiveAvgPool2d` / `AdaptiveMaxPool2d` give a (N, 1, 1, C) map for output
size 1, a feature map otherwise (flattened through a transpose back to channels-first).
`F.interpolate`, `F.pixel_shuffle` / `pixel_unshuffle` and `F.adaptive_avg_pool2d` /
`adaptive_max_pool2d` are translated for NCHW arrays, between transposes; applied to a
channels-last feature map here, the transposes are dropped (`LAYOUT_FUNCTIONS`).

`F.max_pool2d` / `F.avg_pool2d` of a feature map run channels-last the same way. A submodule set on
several paths of `__init__` (`self.shortcut = nn.Sequential()` then conv + BN under an `if`, `layer if c
else nn.Identity()`) keeps a channels-last input channels-last when it is identity or one channels-last
layer kind on every path. Methods that forward calls (`self.forward_features(x)`) are followed from the
layouts of their arguments and rewritten for them.

A class whose `nn.Sequential` mixes layers that take torch's layout with channels-last ones (torchvision's
mobilenet_v2 InvertedResidual: Conv2dNormActivation blocks, which are built from layer class values and so take
torch's layout, next to an `nn.Conv2d` and a norm) is built in torch's layout instead, when each channels-last layer
it builds has a helper with the same constructor taking torch's layout (`nn.Conv2d(...)` -> `Conv2dNCHW(...)`) and
nothing else in it is unknown (`_torch_layout_fits`): exact, transposes inside the helpers; its owners follow it as
a module taking torch's layout. In directory runs (`api._project_layouts`), classes of other project files are
followed like classes of this file by what their own file's conversion makes of them (`class_layouts`):
channels-last in and out (SqueezeExcitation), or torch's layout (Conv2dNormActivation, unless a class of the
project is passed to it); a class flagged there, or in a file not converted alike, stays unknown (flagged).

**Not run where it would flag**: by default (`convert_source(layout="auto")`) a file this analysis flags (a single
file), or every file of a project where it flags any (a directory run), is built in torch's layout instead
(`torch_layout_build()`, torch_layout.py: every channels-last layer a helper taking torch's layout); what is below
is what a run asking for `layout="channels-last"` gets.

**Left in place (flagged) when** a channels-last value is used in any other way (`view`/`reshape`
to other shapes, tensor indices, unknown functions or submodules, try/with over it, a branch or
loop that leaves it channels-last on one path only, ...). What such a flagged expression computes is
UNKNOWN from there on, never taken for torch's layout: a later line that reads it is kept as written with an
`info` note and a `# MLX layout: kept as written` comment (one cause, one warning).

Also followed: layers built from a layer class value (`norm_layer(planes)` with `norm_layer` defaulting to
`nn.BatchNorm2d`, which nn-layer-values turns into the NCHW helper `BatchNorm2dNCHW`): in a class that is
channels-last through its other layers, the layer is built channels-last,
`channels_last_layer(norm_layer, BatchNorm2dNCHW, BatchNorm2dNHWC)(planes)` (a class value other code passes that is
not that helper, a partial of it or nn.Identity raises there), so no transposes surround it; elsewhere the NCHW
helper takes torch's layout and a channels-last map is transposed into it. `conv_block = blocks[0]` (a class of
this file; an `info` note states the assumption about values passed by other code). torchvision ResNet's
construction: `self.layer1 = self._make_layer(block, 64, n)` (a method of the class as a layer factory, also a
`@staticmethod` like shufflenet's `depthwise_conv`), `norm_layer = self._norm_layer` (the values `self._norm_layer`
is set to), `block` a parameter without a default (what this file's calls pass, followed back through callers:
`_resnet(BasicBlock, ...)` -> `ResNet(block, ...)` -> `self._make_layer(block, ...)`; only where those calls are
all its uses; `block(...)` becomes `followed_class(block, BasicBlock, Bottleneck)(...)`, which raises for a class
other code passes), and a module passed to a class through such a name (`block(..., downsample)` with
`downsample` None or conv + norm: each value counts); a
channels-last name combined with a torch-layout tensor (transposed back there); a function of this file applied
to a channels-last value (fed torch's layout); lists of maps of one layout (`torch.cat(outputs, 1)`);
`nn.Sequential(*layers)` of a list the function builds.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional, Protocol, runtime_checkable

import libcst as cst

from torch2mlx.patterns import find, is_name, is_self_attribute
from torch2mlx.template import sentinel
from torch2mlx.transforms import Transform
from torch2mlx.transforms.layout.flow import LayoutFlow, with_join_fixes
from torch2mlx.transforms.layout.ops import RANK, SAME, UNKNOWN, LayoutOps, mx_call, shape_source
from torch2mlx.transforms.layout.ops import int_value as _int
from torch2mlx.transforms.layout.torch_layout import TorchLayoutTransform
from torch2mlx.transforms.module.layer_values import CHANNELS_LAST_LAYER, DEPENDS, FOLLOWED_CLASS, HELPER_CODE, VALUES
from torch2mlx.binding import Flag
from torch2mlx.transforms.codegen import add_helpers
from torch2mlx.transforms.layout.tables import (  # what each layer does to a layout
    AXES, TO_CL, TO_TORCH, TO_TORCH_AXES, ADAPTIVE, FUNCTIONS, KEEP, LAYOUT_FUNCTIONS, PER_POSITION, SPATIAL, Resampled)
from torch2mlx.layout_facts import CHANNELS_LAST, Layout, ModuleList, ProjectLayouts, Seq, ToPlain

RULE = "nn-layout"
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _layer_kind(rw, call: cst.BaseExpression) -> Optional[str]:
    if isinstance(call, cst.Call):
        qual = rw.qualified_name(call.func) or ""
        if qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional"):
            return qual.rsplit(".", 1)[-1]
    return None


def _torch_layer_name(qual: Optional[str]) -> Optional[str]:
    """`BatchNorm2d` for "torch.nn.BatchNorm2d" (a torch layer class, not a function), else None."""
    if qual and qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional"):
        return qual.rsplit(".", 1)[-1]
    return None


def _axis(layout, index) -> Optional[int]:
    """The channels-last axis for torch axis `index`, or None when the layout or axis is unknown."""
    return AXES.get(layout, {}).get(index) if index is not None else None


def _assigned_names(small) -> list:
    """Names a small statement binds other than `name = value` (tuple targets, augmented and annotated ones)."""
    found: list = []
    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else (
        [small.target] if isinstance(small, (cst.AugAssign, cst.AnnAssign)) else [])
    for target in targets:
        elements = [el.value for el in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
        found.extend(el.value for el in elements if isinstance(el, cst.Name))
    return found


def _names(node: cst.CSTNode) -> list:
    found = []

    class _Collect(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.append(n)

        def visit_Attribute(self, n: cst.Attribute) -> bool:
            n.value.visit(self)
            return False

    node.visit(_Collect())
    return found


@runtime_checkable
class LayoutHost(Protocol):
    """What the layout analysis asks of the pass it runs in (every hook's `rw`): the plugin context
    (`context.PluginContext`) in the pass, a `_Rehearsal` while a method is followed ahead of it."""

    project_layout_builders: Optional[frozenset]  # names of other project files building channels-last layers

    def qualified_name(self, node: cst.BaseExpression) -> Optional[str]: ...

    def flag(self, node: cst.CSTNode, rule_id: str, kind: str, message: str, severity: str = "warning") -> None: ...

    def flags(self, since: int = 0) -> tuple: ...

    def need_import(self, *roots: str) -> None: ...

    def mark_identity(self, node: cst.CSTNode) -> None: ...


@dataclass
class _Followed:
    """What the analysis holds while it follows one function: forward in the pass, or a method followed ahead of the
    pass from the layouts of its arguments (`_analyse`, which gives it a fresh one and puts the pass's back)."""
    state: Optional[dict] = None  # name -> layout inside the forward being visited
    layers: Optional[dict] = None
    notes: list = field(default_factory=list)  # per class: [inputs, output layouts]
    replace: dict = field(default_factory=dict)  # id(original node) -> replacement
    unwrap: set = field(default_factory=set)  # id(original call) of F.interpolate & co. applied to a channels-last map
    rebuild: dict = field(default_factory=dict)  # id(original call) -> its MLX form built from its receiver (x.flatten(2), ...)
    reindex: dict = field(default_factory=dict)  # id(original subscript) -> layout whose axes its index is spread over
    to_channels_last: dict = field(default_factory=dict)  # id(original call of a layer) -> permutation for its plain argument
    frames: list = field(default_factory=list)  # open if / loop statements of the forward (flow.py)
    loop_modules: dict = field(default_factory=dict)  # loop variable over an nn.ModuleList of channels-last blocks -> their layout
    scalars: set = field(default_factory=set)  # names bound to sizes by `N, C, H, W = x.shape` in the forward
    doubted: set = field(default_factory=set)  # id(node) flagged in the current statement (a consumer of it is not flagged again)
    cls_node: Optional[cst.ClassDef] = None  # the channels-last class whose methods are being followed
    join_fix: dict = field(default_factory=dict)  # id(original branch body) -> [(name, permutation)] appended at its end (flow.py)
    ranks: dict = field(default_factory=dict)  # name in torch's layout -> its rank, where known (joins need it: flow.py)
    mixed_reported: set = field(default_factory=set)  # "?" names flagged once in this function (later reads: info notes)
    arg_transposes: dict = field(default_factory=dict)  # id(original call of a plain function) -> [(argument index, permutation)]


class NnLayoutTransform(LayoutOps, LayoutFlow, Transform):
    id = "nn-layout"
    description = "channels-last activations around convolution, pooling and batch-norm layers"
    order = 110
    needs_every_statement = True  # a forward with no torch call still moves feature maps around
    hot_attributes = ("view", "flatten", "reshape", "cat", "mean", "size", "shape")

    def __init__(self) -> None:
        self.fwd = _Followed()  # the function being followed (forward, or a method it calls)
        self.classes: list = []       # per class: {attr: layout kind of the submodule} or None
        self.class_stack: list = []   # (ClassDef, layers or None) of the classes being visited
        self.outputs: dict = {}       # channels-last class name -> output layouts of its forward
        self.calls = None             # call-site analysis (channels-last instances), set per module
        self.own: dict = {}           # class of this file that maps a channels-last input to channels-last -> its output layout
        self.imported: dict = {}      # the same for classes imported from other project files (directory runs)
        self.demoted: set = set()     # id(ClassDef) built in torch's layout though it builds channels-last layers
        self.adapted: dict = {}       # id(Call) of a channels-last class value in a demoted class -> its class names
        self._probe_adapted: dict = {}  # the same, found while reading a class for torch's layout
        self.torch_layout: list = []  # module-level classes left in torch's layout (class_layouts)
        self._probing = False         # reading what a class's layers would be in torch's layout (_torch_layout_fits)
        self._nchw_mixed = False      # a container of the class read holds torch-layout and channels-last layers
        self._probe_unknown = False   # _torch_layout_fits met a module it does not know
        self.module_names: dict = {}  # module-level name -> its bindings (a class name is used only when bound once)
        self.partial_names: frozenset = frozenset()  # module-level names of functools.partial (_functools_partial_names)
        self.cascaded = False         # the current statement reads a value of unknown layout (its name): kept as written
        self.cascade_lines: dict = {}  # id(original statement) -> the name of unknown layout it reads (a comment)
        self.method_plans: dict = {}  # id(method FunctionDef) -> layouts of its parameters (from its calls in forward)
        self._method_results: dict = {}  # (id(method), parameter layouts) -> the layout it returns, or None
        self.method_outputs = None    # the class's output layouts, set aside while one of its methods is visited
        self.functions: dict = {}     # module-level function -> its FunctionDef (layer factories like conv3x3)
        self.class_defs: dict = {}    # module-level class name -> its ClassDef
        self._constructions: Optional[dict] = None  # class name -> [(call, enclosing FunctionDef, class)], on demand
        self._module_node: Optional[cst.Module] = None
        self._calls_walk: Optional[_ModuleCalls] = None
        self._scope_bindings: dict = {}  # id(FunctionDef) -> its bindings
        self.promoted: set = set()    # classes without channels-last layers that keep feature maps channels-last
        self._cl_memo: dict = {}      # class name -> whether it takes channels-last input
        self._checking: set = set()   # classes being checked (guards a class built from itself)
        self._scopes: list = []       # the __init__ / layer factories whose module values are being read
        self.assumed: dict = {}       # id(__init__) -> (parameter, its default) whose layer class value is assumed
        self.value_builds: dict = {}  # id(`norm_layer(c)` call) -> (id(__init__), NCHW helper, NHWC helper)
        self.rebuild_cl: dict = {}    # the value_builds of the channels-last classes being visited: rewritten
        self.rebuilt: set = set()     # the value_builds rewritten
        self._value_builds_cl = True  # False while reading whether a class is channels-last without such layers
        self._spatial_memo: dict = {}  # (class name, own classes, promoted) -> _owner_is_spatial
        self._owners: dict = {}       # id(call or FunctionDef) -> the module-level ClassDef around it
        self.class_checks: dict = {}  # id(`block(...)` call) -> the classes of this file `block` is followed as
        self._via_call_sites = False  # the values just read came from this file's calls of a function
        self._scope_calls: dict = {}  # id(FunctionDef) -> the calls in it
        self._self_stores: dict = {}  # id(ClassDef) -> its `self.x = value` stores (_SelfStores)
        self._indirect: dict = {}     # class name -> _indirect_constructions
        self.rehearsing = 0           # > 0 while a method is followed ahead of the pass (`_analyse`)

    def applies_to(self, text: str) -> bool:
        return (any(k in text for k in SPATIAL) or any(k in text for k in KEEP)
                or any(k.rsplit(".", 1)[-1] in text for k in LAYOUT_FUNCTIONS))

    @staticmethod
    def torch_layout_build() -> Transform:
        """What runs in this transform's place where the code is built in torch's layout (`api`'s layout mode):
        every channels-last layer a helper taking torch's layout (torch_layout.py)."""
        return TorchLayoutTransform()

    # ----- classes ---------------------------------------------------------------------------
    def visit_ClassDef(self, rw, node: cst.ClassDef) -> None:
        layers = self._class_layers(rw, node)
        if layers is not None and self._owner_is_spatial(rw, node):  # its `norm_layer(c)` layers are built
            self.rebuild_cl.update({call: build for call, build in self.value_builds.items() if build[0] == id(node)})
        self.classes.append(layers)
        self.notes.append([[], set(), 0])  # inputs, output layouts, statements of forward analysed
        self._plan_methods(rw, node, layers)
        self.class_stack.append((node, layers))

    def _plan_methods(self, rw, node: cst.ClassDef, layers: Optional[dict]) -> None:
        """Follow forward ahead of the pass, so that the methods it calls (defined before it, often) are visited
        by the pass knowing the layouts of their parameters."""
        self.method_plans, self._method_results = {}, {}
        forward = self._forward(node)
        if layers is None or forward is None or not self._methods(node):
            return
        first = self._input_layout(rw, node, layers)
        self._analyse(rw, node, forward, {p.name.value: first for p in forward.params.params[1:] if p.default is None}, layers)

    def _class_layers(self, rw, node: cst.ClassDef, promoted: bool = True) -> Optional[dict]:
        """{attr: layout kind of the submodule} when `__init__` builds a channels-last layer, else None. Layers built
        from torch layer class values (`norm_layer(c)`) are channels-last in a class that is channels-last without
        them (`_owner_is_spatial`), else helpers in torch's layout (the class stays as torch wrote it: exact)."""
        layers: dict = {}
        passed: dict = {}  # attr -> (__init__, parameter) for `self.attr = parameter`
        saved, self._nchw_mixed = self._nchw_mixed, False
        try:
            for stmt in node.body.body:
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
                    self._init_assignments(rw, stmt, stmt.body.body, layers, passed)
            mixed = self._nchw_mixed
        finally:
            self._nchw_mixed = saved
        layers = {attr: layout for attr, layout in layers.items() if layout is not _ABSENT}
        # a head taking channels-last data and giving torch's layout does not make its owner channels-last (the
        # owner stays in torch's layout; its call of the head is transposed as any call of a channels-last class)
        spatial = any(v not in (None, Layout.PER_POSITION, Layout.PLAIN, _UNPROVEN, Layout.NCHW) and not isinstance(v, ToPlain)
                      for v in layers.values())
        if not spatial and (not promoted or node.name.value not in self.promoted):
            return None  # modules passed to __init__ matter only in a class that is channels-last already
        for attr, (init, param) in passed.items():
            layers.setdefault(attr, self._passed_module_layout(rw, node, init, param))
        # (not while reading whether the class is channels-last without its class-value layers: built channels-last,
        # they may not mix)
        if mixed and self._value_builds_cl and not self._probing and Layout.UNFOLLOWED in layers.values() \
                and self._torch_layout_fits(rw, node):
            self.demoted.add(id(node))
            self.value_builds = {call: build for call, build in self.value_builds.items() if build[0] != id(node)}
            return None
        return layers

    def _nchw_container(self, kinds: set) -> str:
        """A Sequential holding layers that take torch's layout: one too, or not followed when channels-last layers
        are in it as well (noted: the class may fit torch's layout, `_torch_layout_fits`)."""
        if kinds <= {Layout.NCHW, Layout.PER_POSITION}:
            return Layout.NCHW
        self._nchw_mixed = True
        return Layout.UNFOLLOWED

    def _torch_layout_fits(self, rw, node: cst.ClassDef) -> bool:
        """A class whose layers take torch's layout next to channels-last ones (torchvision's mobilenet_v2
        InvertedResidual: `nn.Sequential(*layers)` of Conv2dNormActivation blocks, a conv and a norm) cannot be
        channels-last; it is built in torch's layout instead when each channels-last layer it builds has a
        helper that takes torch's layout (`nn.Conv2d(...)` -> `Conv2dNCHW(...)`, the same constructor: leave_Call)
        and nothing else in it needs channels-last data: then it is torch's class, exact (transposes inside the
        helpers), followed by its owners as a module taking torch's layout."""
        if len(self.module_names.get(node.name.value, [])) != 1:
            return False
        layers: dict = {}
        self._probing, saved = True, self._value_builds_cl
        # (the class values built adapted are this class's own: a class read inside keeps its own)
        outer_adapted, self._probe_adapted = self._probe_adapted, {}
        self._value_builds_cl, self._probe_unknown = False, False
        try:
            for stmt in node.body.body:
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
                    self._init_assignments(rw, stmt, stmt.body.body, layers, {})
            kinds = set(layers.values())
            fits = not self._probe_unknown and Layout.NCHW in kinds \
                and kinds <= {Layout.NCHW, Layout.PER_POSITION, Layout.PLAIN, None, _ABSENT}
            if fits:  # built adapted only where the class is built in torch's layout (leave_Call checks its owner)
                self.adapted.update(self._probe_adapted)
        finally:
            self._probing, self._value_builds_cl, self._probe_adapted = False, saved, outer_adapted
        return fits

    def _adapted_class_value(self, rw, value) -> Optional[tuple]:
        """`se_layer(c)` in a class read for torch's layout, `se_layer` a parameter every value of which (its default,
        what this file passes) is a class that takes a channels-last map and gives one (`own` / `imported`: torchvision's
        SqueezeExcitation), or a `functools.partial` of one given no class of the project: those classes' names. Built
        there as `torch_layout_module(se_layer(c), SqueezeExcitation)`: channels moved last around its call (exact: it
        computes on channels-last data what torch's class computes on torch's), any other class raising at run time."""
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)) or not self._scopes:
            return None
        scope, name = self._scopes[-1], value.func.value
        if name not in {p.name.value for p in scope.params.params} or not any(c is value for c in self._calls_of(scope)):
            return None
        values = self._values_of(scope, name)
        if not values or any(arg.star for arg in value.args) or any(
                n.value in self.class_defs or n.value in self.imported or n.value in rw.project_module_classes
                for arg in value.args for n in find(arg.value, cst.Name)):
            return None  # (a class of the project given to it, or what *args carry, may not keep its layout)
        classes = []
        for v in values:
            extra = []
            if isinstance(v, cst.Call) and self._is_partial(rw, v.func) and v.args \
                    and not v.args[0].keyword and not v.args[0].star:
                v, extra = v.args[0].value, v.args[1:]
            if not isinstance(v, cst.Name) or len(self.module_names.get(v.value, [])) != 1:
                return None
            layout = self.own.get(v.value, self.imported.get(v.value))
            if layout not in (*CHANNELS_LAST, Layout.POOLED):
                return None
            for arg in extra:  # a class of the project given to it may not keep its layout
                if arg.star or any(n.value in self.class_defs or n.value in self.imported or n.value in rw.project_module_classes
                                   for n in find(arg.value, cst.Name)):
                    return None
            classes.append(v.value)
        return tuple(dict.fromkeys(classes))

    def _init_assignments(self, rw, init: cst.FunctionDef, body, layers: dict, passed: dict) -> None:
        self._scopes.append(init)
        try:
            self._init_lines(rw, init, body, layers, passed)
        finally:
            self._scopes.pop()

    def _init_lines(self, rw, init: cst.FunctionDef, body, layers: dict, passed: dict) -> None:
        """`self.attr = <module>` in `__init__`, in order: a later assignment replaces an earlier one; the branches
        of an `if` are merged (`self.shortcut = nn.Sequential()` then, under `if stride != 1:`, a conv + BN: the
        shortcut keeps a channels-last input channels-last either way). `None` is no module: it is never called."""
        for line in body:
            if isinstance(line, cst.If):
                before = dict(layers)
                self._init_assignments(rw, init, line.body.body, layers, passed)
                branch, other = dict(layers), dict(before)
                orelse = line.orelse
                if isinstance(orelse, cst.If):
                    self._init_assignments(rw, init, [orelse], other, passed)
                elif orelse is not None:
                    self._init_assignments(rw, init, orelse.body.body, other, passed)
                layers.clear()
                # source order (a set union's order follows the hash seed): `_input_layout` takes the first layer
                for attr in dict.fromkeys([*branch, *other]):
                    layers[attr] = _either(branch.get(attr, _ABSENT), other.get(attr, _ABSENT))
            elif isinstance(line, cst.SimpleStatementLine):
                for small in line.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1:
                        target = small.targets[0].target
                        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
                            value = small.value
                            local = self._local_value(value)
                            if local is not None:  # `final_conv = nn.Conv2d(...)` ... `self.conv = final_conv`
                                value = local
                            if isinstance(value, cst.Name) and value.value != "None":
                                passed[target.attr.value] = (init, value.value)
                            else:
                                layout = self._module_or_none(rw, value)
                                if layout is None and self._channels_last_class(rw, value):
                                    layout = _UNPROVEN
                                layers[target.attr.value] = layout

    def _module_or_none(self, rw, value):
        """`_module_layout`, with `None` (no module) as _ABSENT and `a if cond else b` as either of the two."""
        if isinstance(value, cst.Name) and value.value == "None":
            return _ABSENT
        if isinstance(value, cst.IfExp):
            return _either(self._module_or_none(rw, value.body), self._module_or_none(rw, value.orelse))
        return self._module_layout(rw, value)

    def _passed_module_layout(self, rw, cls: cst.ClassDef, init: cst.FunctionDef, param: str) -> Optional[str]:
        """`self.downsample = downsample` (an __init__ parameter): the one layout of every module this file passes
        for it (`Block(..., downsample=nn.Sequential(conv, bn))`, also through a name holding the class:
        `block(..., downsample)` in torchvision's `_make_layer`; None passed or defaulted does not count). A local
        name bound on several paths (`downsample = None`, then a Sequential under an `if`) counts each value."""
        params = [p.name.value for p in init.params.params[1:]]
        if param not in params or len(self.module_names.get(cls.name.value, [])) != 1:
            return None
        index = params.index(param)
        indirect = self._indirect_constructions(cls.name.value)
        if indirect is None:
            return None
        layouts = set()
        for call, scope in [(call, scope) for call, scope, _ in self.constructions().get(cls.name.value, [])] + indirect:
            if any(a.star == "*" for a in call.args):
                return None
            value = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == param), None)
            plain = [a.value for a in call.args if a.keyword is None and not a.star]
            if value is None and index < len(plain):
                value = plain[index]
            if value is None and any(a.star for a in call.args):
                return None  # **kwargs may carry it (given explicitly, it cannot)
            values = [value]
            if isinstance(value, cst.Name) and scope is not None:
                bound = self._scope_bindings_of(scope).get(value.value, [])
                if bound and all(isinstance(v, cst.Call) or is_name(v, "None") for v in bound):
                    values = bound
            for value in values:
                if value is None or (isinstance(value, cst.Name) and value.value == "None"):
                    continue
                if not isinstance(value, cst.Call):
                    layouts.add(None)
                    continue
                self._scopes.append(scope) if scope is not None else None
                try:
                    layouts.add(self._module_layout(rw, value))
                finally:
                    self._scopes.pop() if scope is not None else None
        layout = layouts.pop() if len(layouts) == 1 else None
        return layout if layout in (Layout.CL2, Layout.CL1, Layout.CL3, Layout.PER_POSITION, Layout.KEEP, Layout.POOLED, Layout.NCHW) else None

    def _input_layout(self, rw, node: cst.ClassDef, layers: dict) -> str:
        """The layout a channels-last class takes: its first spatial layer's, else its layout-keeping layers'
        dimension (a class with only `nn.ReflectionPad1d` takes (N, L, C)), else (N, H, W, C)."""
        found = next((v for v in layers.values() if v in SPATIAL.values() and v != Layout.POOLED), None)
        if found is not None:
            return found
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
                for call in _calls_in(stmt):
                    kind = _layer_kind(rw, call)
                    if kind in KEEP and kind[-2:] in ("1d", "3d"):
                        return Layout("cl" + kind[-2])
        return Layout.CL2

    def _module_layout(self, rw, value) -> Optional[str]:
        """What a submodule does to a channels-last input: a layout, 'pp' (per position), 'flag' or None. While a
        class is read for torch's layout (`_torch_layout_fits`), a call of something else than a torch layer whose
        effect is not known (a class value, a class of another file without facts) is noted: it may be a
        channels-last class, which torch-layout data would not fit."""
        found = self._module_layout_of(rw, value)
        if self._probing and found is None and isinstance(value, cst.Call) and _layer_kind(rw, value) is None:
            self._probe_unknown = True
        return found

    def _module_layout_of(self, rw, value) -> Optional[str]:
        if self._probing:
            adapted = self._adapted_class_value(rw, value)
            if adapted is not None:
                self._probe_adapted[id(value)] = adapted
                return Layout.NCHW
        if isinstance(value, cst.IfExp):  # `nn.BatchNorm2d(c) if use_bn else nn.Identity()`
            found = self._module_or_none(rw, value)
            return None if found is _ABSENT else found
        kind = _layer_kind(rw, value)
        if self._probing and (kind in SPATIAL or kind in KEEP or kind in ADAPTIVE):
            return Layout.NCHW if _torch_layout_helper(rw, value) is not None else Layout.UNFOLLOWED
        if self._probing and (self._own_class(value) is not None or self._channels_last_class(rw, value)):
            return Layout.UNFOLLOWED
        if self._takes_torch_layout(rw, value):
            return Layout.NCHW
        if kind in ADAPTIVE:
            return Layout.POOLED if _global_pool(value) else Layout.CL2
        if kind in SPATIAL:
            return SPATIAL[kind]
        if kind in PER_POSITION:
            return Layout.PER_POSITION
        if kind in KEEP:
            return Layout.KEEP
        own = self._own_class(value)
        if own is not None:
            return own
        if kind == "ModuleList" and len(value.args) == 1 and not value.args[0].keyword:
            return self._module_list(rw, value.args[0].value)
        built = self._built_from_value(rw, value)
        if built is not None:
            return built
        factory = self._factory_layout(rw, value)
        if factory is not None:
            return factory
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in _project_builders(rw):
            return Layout.UNFOLLOWED  # a class or factory of another project file that builds channels-last layers
        if kind == "Sequential" and len(value.args) == 1 and value.args[0].star == "*" \
                and isinstance(value.args[0].value, cst.Name):
            return self._list_layout(rw, value.args[0].value.value)
        if kind == "Sequential" and all(not a.keyword and (not a.star or self._repeated(rw, a)) for a in value.args):
            layout = Layout.PER_POSITION
            inners = [self._repeated(rw, arg) if arg.star else self._module_layout(rw, self._local_value(arg.value) or arg.value)
                      for arg in value.args]
            if Layout.NCHW in inners:  # torch-layout layers with channels-last ones: one of them gets the other layout
                return self._nchw_container(set(inners))
            for arg, inner in zip(value.args, inners):
                if inner is None and not arg.star and self._channels_last_class(rw, arg.value):
                    return Layout.UNFOLLOWED  # takes channels-last input, not known to keep it: what the container feeds it is not followed
                if isinstance(inner, ToPlain):
                    return Layout.UNFOLLOWED  # channels-last in, torch's layout (of any rank) out: the next element's input is not followed
                if inner in SPATIAL.values():
                    layout = inner
                elif inner == Layout.KEEP:
                    layout = Layout.CL2 if layout == Layout.POOLED else (Layout.KEEP if layout == Layout.PER_POSITION else layout)
                elif inner != Layout.PER_POSITION:
                    return Layout.UNFOLLOWED if layout != Layout.PER_POSITION else None
            return layout
        return None

    def _built_from_value(self, rw, value) -> Optional[str]:
        """`norm_layer(planes)` / `conv_block(cin, cout, kernel_size=1)` in __init__, for a parameter that defaults
        to a layer class (or to None, then `norm_layer = nn.BatchNorm2d`): what every value it is given here
        builds. A torch layer class value becomes a helper taking torch's (N, C, ...) data (nn-layer-values:
        "nchw"), a per-position one "pp", a class of this file its layout. What other code passes for the
        parameter is taken to build the same kind of layer (an `info` note on the class says so)."""
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)) or not self._scopes:
            return None
        scope, name = self._scopes[-1], value.func.value
        if not any(c is value for c in self._calls_of(scope)):
            return None  # read from another function than the one around it
        self._via_call_sites = False
        values = self._values_of(scope, name)
        via_call_sites = self._via_call_sites  # read now: what follows reads other classes, and resets it
        if not values:
            return None
        kinds = {self._class_value_kind(rw, v) for v in values} - {_ABSENT}
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is None:
            return None
        if kind == Layout.NCHW and self._value_builds_cl:
            channels_last = self._channels_last_build(rw, scope, value, values)
            if channels_last is not None:
                self.assumed.get(id(scope), {}).pop(name, None)
                return channels_last
        if via_call_sites:  # what other code passes is not known: checked where built, at run time
            classes = [v.value for v in values if isinstance(v, cst.Name) and v.value in self.class_defs]
            if len(classes) == len(values) and kind not in (None, _UNPROVEN, Layout.UNFOLLOWED):
                self.class_checks[id(value)] = tuple(dict.fromkeys(classes))
                return kind
            return None
        default = next((v for v in values if self._class_value_kind(rw, v) is not _ABSENT), None)
        self.assumed.setdefault(id(scope), {})[name] = cst.Module([]).code_for_node(default)
        return kind

    def _channels_last_build(self, rw, scope: cst.FunctionDef, call: cst.Call, values: list) -> Optional[str]:
        """`norm_layer(planes)` in a method of a class that is channels-last through its other layers, `norm_layer`
        one torch layer class that is channels-last in MLX (nn.BatchNorm2d, `partial(nn.BatchNorm2d, eps=1e-3)`,
        None then nn.BatchNorm2d): built channels-last (`channels_last_layer(norm_layer, BatchNorm2dNCHW,
        BatchNorm2dNHWC)(planes)`, which raises for a class value other code passes that is not that helper or
        nn.Identity), so every reader follows it as that layer. Whether it is so depends on that class alone (the
        same answer for every class reading it); the class rewrites it when visited (leave_Call)."""
        owner = self._owners.get(id(call))
        if owner is None or self._owners.get(id(scope)) is not owner or not self._owner_is_spatial(rw, owner):
            return None
        layers = {self._torch_class_value(rw, v) for v in values} - {_ABSENT}
        layer = layers.pop() if len(layers) == 1 else None
        nchw = VALUES.get(layer, ("",))[0] if layer is not None else ""
        nhwc = nchw.replace("NCHW", "NHWC")
        if not nchw.endswith("NCHW") or nhwc not in HELPER_CODE or layer in ADAPTIVE:
            return None
        kind = SPATIAL.get(layer) or (Layout.KEEP if layer in KEEP else None)
        if kind is not None:
            self.value_builds[id(call)] = (id(owner), nchw, nhwc)
        return kind

    def _owner_is_spatial(self, rw, owner: cst.ClassDef) -> bool:
        """Whether the class is channels-last through layers other than those built from torch class values."""
        key = (owner.name.value, tuple(sorted(self.own.items())), tuple(sorted(self.promoted)))
        if key not in self._spatial_memo:
            self._spatial_memo[key] = False  # a class reading itself: not known yet
            saved = self._value_builds_cl
            self._value_builds_cl = False
            try:
                self._spatial_memo[key] = self._class_layers(rw, owner, promoted=False) is not None
            finally:
                self._value_builds_cl = saved
        return self._spatial_memo[key]

    def _torch_class_value(self, rw, value):
        """The torch.nn class a layer class value names (through functools.partial), _ABSENT for None, else None."""
        if isinstance(value, cst.Name) and value.value == "None":
            return _ABSENT
        if isinstance(value, cst.Call) and rw.qualified_name(value.func) == "functools.partial" and value.args \
                and not value.args[0].keyword and not value.args[0].star:
            value = value.args[0].value
        qual = rw.qualified_name(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
        return _torch_layer_name(qual)

    def _values_of(self, scope: cst.FunctionDef, name: str, nested: bool = False, depth: int = 0) -> Optional[list]:
        """Every value `name` may hold in `scope`: a parameter's default (a parameter without one: None) and what
        it is assigned; `blocks[0]` of a parameter `blocks` (None, then `blocks = [BasicConv2d, InceptionA]`):
        element 0 of each list it may hold (googlenet / inception)."""
        bound = self._scope_bindings_of(scope).get(name, [])
        param = next((p for p in [*scope.params.posonly_params, *scope.params.params, *scope.params.kwonly_params]
                      if p.name.value == name), None)
        if param is not None and param.default is None:
            values = self._param_values(scope, name, depth)
            if values is None or any(not (isinstance(v, tuple) and v[0] == "param") for v in bound):
                return None
            return values
        values = [param.default] if param is not None else []
        for v in bound:
            if isinstance(v, tuple) and v[0] == "param":
                continue
            if not isinstance(v, cst.BaseExpression):
                return None
            if is_self_attribute(v):  # `norm_layer = self._norm_layer`
                more = self._attribute_values(scope, v.attr.value, depth)
                if more is None:
                    return None
                values.extend(more)
                continue
            values.append(v)
        found = []
        for v in values:
            index = _int(v.slice[0].slice.value) if (isinstance(v, cst.Subscript) and len(v.slice) == 1 and isinstance(
                v.slice[0].slice, cst.Index)) else None
            if index is None or not isinstance(v.value, cst.Name):
                found.append(v)
                continue
            lists = None if nested else self._values_of(scope, v.value.value, True)
            if lists is None:
                return None
            for seq in lists:
                if isinstance(seq, cst.Name) and seq.value == "None":
                    continue
                if not isinstance(seq, (cst.List, cst.Tuple)) or not 0 <= index < len(seq.elements) \
                        or any(isinstance(el, cst.StarredElement) for el in seq.elements):
                    return None
                found.append(seq.elements[index].value)
        return found

    def _class_value_kind(self, rw, value) -> Optional[str]:
        """What a layer class value builds: _ABSENT for None, "nchw" / "pp" for torch's classes (nn-layer-values
        helpers), a layout for classes of this file; None when not known."""
        if isinstance(value, cst.Name) and value.value == "None":
            return _ABSENT
        if isinstance(value, cst.Call) and rw.qualified_name(value.func) == "functools.partial" and value.args \
                and not value.args[0].keyword and not value.args[0].star:
            value = value.args[0].value
        if not isinstance(value, (cst.Name, cst.Attribute)):
            return None
        qual = rw.qualified_name(value) or ""
        if qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional"):
            layer = qual.rsplit(".", 1)[-1]
            helper = VALUES.get(layer, ("",))[0]
            return Layout.NCHW if helper.endswith("NCHW") else (Layout.PER_POSITION if layer in PER_POSITION else None)
        if isinstance(value, cst.Name) and qual == "":
            built = cst.Call(func=value)
            own = self._own_class(built)
            if own is not None:
                return own
            channels_last = self._channels_last_class(rw, built)  # (reads the class: whether it was demoted)
            if not channels_last and value.value in self.class_defs and len(self.module_names.get(value.value, [])) == 1 \
                    and id(self.class_defs[value.value]) in self.demoted:
                return Layout.NCHW  # a class of the file built in torch's layout (`_torch_layout_fits`)
            return _UNPROVEN if channels_last else None
        return None

    def _local_value(self, value) -> Optional[cst.Call]:
        """A name bound once, to a call, in the function being read (`conv2d = nn.Conv2d(...)`): that call."""
        if not self._scopes or not isinstance(value, cst.Name):
            return None
        bound = self._scope_bindings_of(self._scopes[-1]).get(value.value, [])
        return bound[0] if len(bound) == 1 and isinstance(bound[0], cst.Call) else None

    def _calls_of(self, scope: cst.FunctionDef) -> list:
        if id(scope) not in self._scope_calls:
            self._scope_calls[id(scope)] = _calls_in(scope.body)
        return self._scope_calls[id(scope)]

    def _scope_bindings_of(self, scope: cst.FunctionDef) -> dict:
        if id(scope) not in self._scope_bindings:
            self._scope_bindings[id(scope)] = _bindings(scope)
        return self._scope_bindings[id(scope)]

    def _list_layout(self, rw, name: str) -> Optional[str]:
        """`nn.Sequential(*layers)` of a list the function builds (`layers = []`, `layers.append(m)`, `layers +=
        [a, b]`, `layers.extend([...])`, in loops and branches): the order is not known, so the layers must all
        keep a layout (per position, or one channels-last layout); one that is not known next to a
        channels-last one makes it "flag"."""
        elements = _list_elements(self._scopes[-1], name) if self._scopes else None
        if elements is None:
            return None
        kinds = set()
        for el in elements:
            el = self._local_value(el) or el
            kind = self._module_layout(rw, el)
            if kind is None and self._channels_last_class(rw, el):
                kind = Layout.UNFOLLOWED
            kinds.add(kind)
        if Layout.NCHW in kinds:
            return self._nchw_container(kinds)
        spatial = kinds - {Layout.PER_POSITION, Layout.KEEP, None, Layout.PLAIN}
        if None in kinds or Layout.PLAIN in kinds:
            return Layout.UNFOLLOWED if spatial or Layout.KEEP in kinds else None
        if not spatial:
            return Layout.KEEP if Layout.KEEP in kinds else Layout.PER_POSITION
        return spatial.pop() if len(spatial) == 1 and spatial <= set(_CHANNELS_LAST) else Layout.UNFOLLOWED

    def _module_list(self, rw, items) -> Optional[str]:
        """`nn.ModuleList([Block(...) for ...])` of one channels-last kind: `ModuleList(<layout>)` (loops over it are followed)."""
        elements = [items.elt] if isinstance(items, cst.ListComp) else (
            [el.value for el in items.elements] if isinstance(items, (cst.List, cst.Tuple)) else None)
        if not elements or any(isinstance(el, cst.StarredElement) for el in elements):
            return None
        kinds = {self._module_layout(rw, el) for el in elements}
        if None in kinds and any(self._channels_last_class(rw, el) for el in elements):
            return Layout.UNFOLLOWED
        kind = kinds.pop() if len(kinds) == 1 else None
        return ModuleList(kind) if kind in (Layout.CL2, Layout.CL1, Layout.CL3) else None

    def _factory_layout(self, rw, value) -> Optional[str]:
        """`conv3x3(a, b)` for a module-level `def conv3x3(...): return nn.Conv2d(...)`: the layout of what it
        returns; "flag" when its returns differ and one of them is channels-last."""
        function, name = self._self_method_factory(value), None
        if function is not None:
            name = f"{self._owners[id(function)].name.value}.{function.name.value}"
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            name = value.func.value
            function = self.functions.get(name)
            if function is not None and len(self.module_names.get(name, [])) != 1:
                function = None
        if function is None or name in self._checking:
            return None
        self._checking.add(name)
        self._scopes.append(function)
        try:
            layouts = {self._module_layout(rw, r) if isinstance(r, cst.Call) else None for r in _returned(function)}
        finally:
            self._checking.discard(name)
            self._scopes.pop()
        if len(layouts) == 1:
            return layouts.pop()
        return Layout.UNFOLLOWED if layouts - {None, Layout.PER_POSITION, Layout.PLAIN} else None

    def _self_method_factory(self, value) -> Optional[cst.FunctionDef]:
        """`self._make_layer(...)` / `self.depthwise_conv(...)` read in a method of a class: that class's method, when
        no other class of the file defines a method of that name (a subclass could override it)."""
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and self._scopes
                and is_name(value.func.value, "self")):
            return None
        owner, name = self._owners.get(id(self._scopes[-1])), value.func.attr.value
        if owner is None:
            return None
        methods = [s for cls in self.class_defs.values() for s in cls.body.body
                   if isinstance(s, cst.FunctionDef) and s.name.value == name]
        return methods[0] if len(methods) == 1 and self._owners.get(id(methods[0])) is owner else None

    def _param_values(self, scope: cst.FunctionDef, name: str, depth: int) -> Optional[list]:
        """What this file's calls of `scope` pass for its parameter `name` (which has no default), followed back
        through the callers' own parameters and names (`_resnet(BasicBlock, ...)` -> `ResNet(block, ...)` ->
        `self._make_layer(block, ...)`); None when a call site is not known or passes *args / **kwargs for it."""
        sites = self._call_sites(scope) if depth < 6 else None
        if not sites:
            return None
        self._via_call_sites = True
        offset = 1 if self._owners.get(id(scope)) is not None else 0  # self
        positional = [p.name.value for p in [*scope.params.posonly_params, *scope.params.params]][offset:]
        passed: list = []
        for call, caller in sites:
            arg = _argument(call, name, positional)
            if arg is None:
                return None
            if arg is not _MISSING:  # (a missing argument: Python raises there, nothing flows)
                passed.append((arg, caller))
        return self._followed(passed, depth)

    def _followed(self, values: list, depth: int) -> Optional[list]:
        """[(value, the FunctionDef it is written in)] -> the values, a name bound in that function replaced by what
        it is bound to there (followed back further); None where one cannot be followed."""
        found: list = []
        for value, scope in values:
            if isinstance(value, cst.Name) and scope is not None and value.value in self._scope_bindings_of(scope):
                more = self._values_of(scope, value.value, depth=depth + 1)
                if more is None:
                    return None
                found.extend(more)
            else:
                found.append(value)
        return found

    def _call_sites(self, scope: cst.FunctionDef) -> Optional[list]:
        """[(call, enclosing FunctionDef)] of every call of `scope` in this file, when those are all its uses: a
        module-level function called by name, a method called as `self.m(...)` (no other `.m` in the file),
        a class's `__init__` through `Cls(...)` (the class never used as a value outside annotations)."""
        if scope.decorators:
            return None
        walk, name, owner = self._module_calls(), scope.name.value, self._owners.get(id(scope))
        if owner is None:
            calls = walk.function_calls.get(name, [])
            if self.functions.get(name) is not scope or len(self.module_names.get(name, [])) != 1 \
                    or walk.name_refs.get(name, 0) != len(calls) + 1:  # + the def's own name
                return None
            return [(call, fns[-1] if fns else None) for call, fns in calls]
        if not any(s is scope for s in owner.body.body):
            return None
        if name == "__init__":
            cls = owner.name.value
            if len(self.module_names.get(cls, [])) != 1 or walk.value_refs.get(cls, 0):
                return None
            return [(call, fn) for call, fn, _ in self.constructions().get(cls, [])]
        calls = walk.method_calls.get((owner.name.value, name), [])
        return calls if walk.attr_refs.get(name, 0) == len(calls) else None

    def _attribute_values(self, scope: cst.FunctionDef, attr: str, depth: int) -> Optional[list]:
        """`self.<attr>` read in a method: the values every `self.<attr> = value` of its class gives it."""
        owner = self._owners.get(id(scope))
        if owner is None or depth >= 6:
            return None
        if id(owner) not in self._self_stores:
            self._self_stores[id(owner)] = _SelfStores(owner)
        stores = self._self_stores[id(owner)]
        if self._module_calls().attr_stores.get(attr, 0) != stores.count.get(attr, 0):
            return None  # stored elsewhere too (another receiver, an augmented or tuple assignment)
        stored = stores.values.get(attr, [])
        if any(value is None for _, value in stored):
            return None  # `self.x = ... = v`, `self.x, y = ...`: not followed
        return self._followed([(value, method) for method, value in stored], depth) or None

    def _indirect_constructions(self, cls: str) -> Optional[list]:
        """[(call, enclosing FunctionDef)] of `block(...)` calls whose name may hold the class `cls` (`_resnet(BasicBlock,
        ...)` passes it on); None when the class is used as a value and a call of a local name is not followed."""
        walk = self._module_calls()
        if not walk.value_refs.get(cls, 0):
            return []
        if cls in self._indirect:
            return self._indirect[cls]
        self._indirect[cls] = None  # a class reached again while its own constructions are being read: not known
        found = []
        for call, fn in walk.local_calls:
            if call.func.value not in self._scope_bindings_of(fn):
                continue
            values = self._values_of(fn, call.func.value)
            if values is None:
                return None
            if any(isinstance(v, cst.Name) and v.value == cls for v in values):
                found.append((call, fn))
        self._indirect[cls] = found
        return found

    def constructions(self) -> dict:
        """Every `Cls(...)` of this file's classes, found by one walk of the module when first needed."""
        if self._constructions is None:
            self._constructions = self._module_calls().constructions
        return self._constructions

    def _module_calls(self) -> "_ModuleCalls":
        """The one walk of the module both `constructions` and the call sites of channels-last classes read."""
        if self._calls_walk is None:
            self._calls_walk = _ModuleCalls(self._module_node, set(self.class_defs), set(self.functions))
        return self._calls_walk

    def _channels_last_class(self, rw, value) -> bool:
        """`Cls(...)` for a class of this file that takes channels-last input (its __init__ builds such a layer)."""
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
            return False
        name = value.func.value
        node = self.class_defs.get(name)
        if node is None or len(self.module_names.get(name, [])) != 1 or name in self._checking:
            return False
        if name not in self._cl_memo:
            self._checking.add(name)
            try:
                self._cl_memo[name] = self._class_layers(rw, node) is not None
            finally:
                self._checking.discard(name)
        return self._cl_memo[name]

    def _own_class(self, value) -> Optional[str]:
        """The output layout of `Cls(...)` for a class of this file proven to keep feature maps channels-last, or for
        a class imported from another project file that its own file's conversion makes so (directory runs)."""
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            name = value.func.value
            layout = self.own.get(name, self.imported.get(name))
            if layout == Layout.NCHW:
                return None  # an imported class left in torch's layout: `_takes_torch_layout`
            if layout is not None and len(self.module_names.get(name, [])) == 1:  # not rebound: the name is the class
                return layout
        return None

    def class_layouts(self) -> dict:
        """After the pass: the classes of the file that take a channels-last value and give one (what they give),
        followed without a flag, and the classes left in torch's layout (`Layout.NCHW`: they take and give torch's
        layout; no channels-last layer or class of the file is built in them). `api` hands them to the files of a
        directory run that import them."""
        return {**{name: Layout.NCHW for name in self.torch_layout}, **self.own}

    def _all_torch_layout(self, rw, node: cst.ClassDef) -> bool:
        """A class left in torch's layout that names no channels-last layer (but where it is built as a helper in
        torch's layout: `_torch_layout_fits`) and no channels-last class, not even as a default value: what it
        builds takes torch's layout whatever its constructor is given by this file (`class_layouts`)."""
        if id(node) not in self.demoted and any(
                _layer_kind(rw, c) in SPATIAL or _layer_kind(rw, c) in KEEP or _layer_kind(rw, c) in ADAPTIVE
                for c in _calls_in(node)):
            return False
        names = {n.value for n in find(node, cst.Name)} - {node.name.value}
        return not any(n in self.own or (n in self.imported and self.imported[n] != Layout.NCHW)
                       or (n in self.class_defs and self._channels_last_class(rw, cst.Call(func=cst.Name(n))))
                       for n in names)

    def _takes_torch_layout(self, rw, value) -> bool:
        """`Block(...)` for a class that takes torch's layout: one of this file built so (`_torch_layout_fits`), or
        one of another project file that its own conversion leaves in torch's layout, given no class of the
        project as an argument (torchvision's Conv2dNormActivation builds its layers from the classes passed:
        torch's layer classes, in torch's layout as values, keep it so; a class of the project may not)."""
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
            return False
        name = value.func.value
        if len(self.module_names.get(name, [])) != 1:
            return False
        if name in self.class_defs:
            return not self._channels_last_class(rw, value) and id(self.class_defs[name]) in self.demoted
        if self.imported.get(name) != Layout.NCHW or any(a.star for a in value.args):
            return False  # (what **kwargs carries is not seen)
        scope = self._scopes[-1] if self._scopes else None
        for arg in value.args:
            names = [n.value for n in find(arg.value, cst.Name)]
            bound = self._scope_bindings_of(scope) if scope is not None else {}
            params = {p.name.value: p.default for p in scope.params.params} if scope is not None else {}
            for n in list(names):  # a name of the function: what it is bound to, and a parameter's default
                values = [*bound.get(n, []), *([params[n]] if params.get(n) is not None else [])]
                names.extend(m.value for v in values if isinstance(v, cst.CSTNode) for m in find(v, cst.Name))
            if any(n in self.class_defs or n in self.imported or n in rw.project_module_classes for n in names):
                return False
        return True

    def _repeated(self, rw, arg: cst.Arg) -> Optional[str]:
        """`*[Block(...) for ...]` in a Sequential: the layout of one element, when repeating it (0 or more
        times) keeps a channels-last map of that same layout (constructor arguments do not change a layout)."""
        comp = arg.value
        if arg.star != "*" or not isinstance(comp, cst.ListComp):
            return None
        inner = self._module_layout(rw, comp.elt)
        return inner if inner in (Layout.CL2, Layout.CL1, Layout.CL3, Layout.PER_POSITION) else None

    def leave_ClassDef(self, rw, original: cst.ClassDef, updated):
        layers = self.classes.pop()
        if layers is None and self.class_defs.get(original.name.value) is original and self._all_torch_layout(rw, original):
            self.torch_layout.append(original.name.value)
        for call, build in list(self.value_builds.items()):
            if build[0] == id(original) and call not in self.rebuilt:  # never expected: a reader took it channels-last
                del self.value_builds[call]
                rw.flag(original, RULE, "needs-review", f"a layer built from a class value ({build[1]}) is followed as "
                        "channels-last but was not rewritten to be built so")
        inputs, outputs, _ = self.notes.pop()
        self.class_stack.pop()
        self.outputs[original.name.value] = outputs
        if layers is None or not isinstance(updated, cst.ClassDef):
            return updated
        words = {Layout.CL2: "channels-last (N, H, W, C)", Layout.POOLED: "channels-last (N, 1, 1, C)", Layout.CL1: "channels-last (N, L, C)",
                 Layout.CL3: "channels-last (N, D, H, W, C)"}
        words.update({Seq(k): f"lists of {v} maps" for k, v in list(words.items())})  # `return [a, b]`
        out = ", ".join(sorted(words.get(o, "unchanged") for o in outputs)) or "unchanged"
        comment = f"# MLX layout: inputs {', '.join(inputs) or '-'} are channels-last (NHWC / NLC); outputs: {out}"
        line = cst.EmptyLine(comment=cst.Comment(comment))
        if any(l.comment is not None and l.comment.value.startswith("# MLX layout:") for l in updated.leading_lines):
            return updated  # converted before: keep a second pass identical
        init = next((s for s in original.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
        for param, default in sorted(self.assumed.get(id(init), {}).items()) if init is not None and layers else ():
            rw.flag(original, RULE, "needs-review", f"`{param}(...)` layers are followed as what its default `{default}` "
                    "builds: a value passed for it must take and give the same layout", "info")
        if inputs:  # the data fed to this model must change layout too: say so in the report
            rw.flag(original, "nn-layout", "needs-review",
                    f"{original.name.value} takes channels-last input ({', '.join(inputs)}): feed it NHWC/NLC data, "
                    "e.g. mx.transpose(x, (0, 2, 3, 1)) for an NCHW batch", "info")
        return updated.with_changes(leading_lines=[*updated.leading_lines, line])

    def _torch_layout_layer(self, rw, original: cst.Call, updated):
        """`nn.Conv2d(...)` in a class built in torch's layout (`_torch_layout_fits`): `Conv2dNCHW(...)`, the helper
        with torch's constructor that takes and gives torch's layout, with the call's own arguments."""
        helper = _torch_layout_helper(rw, original)
        if helper is None or not isinstance(updated, cst.Call):
            return updated
        try:
            helper = add_helpers(rw, [*DEPENDS.get(helper, ()), helper], HELPER_CODE)[helper]
        except Flag as flag:
            rw.flag(original, RULE, "no-equivalent", f"the class is built in torch's layout: {flag.reason}")
            return updated
        rw.need_import("mx", "nn")
        return updated.with_changes(func=cst.Name(helper), args=original.args)

    def _channels_last_call(self, rw, original: cst.Call, updated):
        """`norm_layer(c)` followed as a channels-last layer: `channels_last_layer(norm_layer, <NCHW>, <NHWC>)(c)`."""
        build = self.rebuild_cl.pop(id(original), None)
        if build is None or not isinstance(updated, cst.Call):
            return updated
        _, nchw, nhwc = build
        wanted = [*DEPENDS.get(nchw, ()), nchw, nhwc, "channels_last_layer"]
        try:
            names = add_helpers(rw, list(dict.fromkeys(wanted)), {**HELPER_CODE, "channels_last_layer": CHANNELS_LAST_LAYER})
        except Flag as flag:
            rw.flag(original, RULE, "no-equivalent", f"the layer is followed as channels-last: {flag.reason}")
            return updated
        func = cst.Call(func=cst.Name(names["channels_last_layer"]),
                        args=[cst.Arg(updated.func, comma=_COMMA), cst.Arg(cst.Name(names[nchw]), comma=_COMMA), cst.Arg(cst.Name(names[nhwc]))])
        self.rebuilt.add(id(original))
        return updated.with_changes(func=func)

    def _checked_class_call(self, rw, original: cst.Call, updated):
        """`block(...)`, `block` a parameter followed as the classes of this file its callers pass:
        `followed_class(block, BasicBlock, Bottleneck)(...)`, which raises for another class (other code's)."""
        classes = self.class_checks.pop(id(original))
        if not isinstance(updated, cst.Call):
            return updated
        try:
            followed = add_helpers(rw, ["followed_class"], {"followed_class": FOLLOWED_CLASS})["followed_class"]
        except Flag as flag:
            rw.flag(original, RULE, "no-equivalent", f"the class built here is followed as {', '.join(classes)}: {flag.reason}")
            return updated
        args = [cst.Arg(updated.func, comma=_COMMA), *(cst.Arg(cst.Name(c), comma=_COMMA) for c in classes)]
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(func=cst.Call(func=cst.Name(followed), args=args))

    # ----- forward ---------------------------------------------------------------------------
    def visit_FunctionDef(self, rw, node: cst.FunctionDef) -> None:
        if self.calls is not None:
            self.calls.enter(node)
        layers = self.classes[-1] if self.classes else None
        if layers is not None and self.state is None and id(node) in self.method_plans:
            self.method_outputs, self.notes[-1][1] = self.notes[-1][1], set()  # its returns are not the class's
            self.state, self.scalars, self.layers = dict(self.method_plans[id(node)]), set(), layers
            self.ranks, self.mixed_reported = {}, set()
            self.cls_node = self.class_stack[-1][0]
            return
        if layers is not None and self.state is None and node.name.value not in ("forward", "__init__"):
            self._unfollowed_method(rw, node, layers)
        if layers is None or node.name.value != "forward":
            return
        self.cls_node = self.class_stack[-1][0]
        names = [p.name.value for p in node.params.params[1:] if p.default is None]
        first = self._input_layout(rw, self.class_stack[-1][0], layers)
        self.scalars, self.ranks, self.mixed_reported = set(), {}, set()
        self.state = {n: first for n in names}
        self.notes[-1][0] = names
        self.layers = layers

    def _unfollowed_method(self, rw, node: cst.FunctionDef, layers: dict) -> None:
        """A method of a channels-last class that is not followed (forward does not call it: `forward_train`,
        `forward_intermediates`; or calls it on a value of unknown layout) but calls its channels-last layers:
        flagged once (its layers take NHWC data)."""
        if not self.class_stack or not any(s is node for s in self.class_stack[-1][0].body.body):
            return
        for call in _calls_in(node.body):
            func = call.func
            if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
                    and layers.get(func.attr.value) not in (None, Layout.PER_POSITION, Layout.NCHW)):
                rw.flag(node.name, RULE, "needs-review", f"`{node.name.value}` is not followed by the layout analysis "
                        "(forward does not call it, or calls it on a value of unknown layout), and the channels-last "
                        "layers it calls take NHWC/NLC data in MLX")
                return

    def leave_FunctionDef(self, rw, original, updated):
        if self.calls is not None:
            self.calls.leave()
        if id(original) in self.method_plans and self.method_outputs is not None:
            self.state, self.notes[-1][1], self.method_outputs = None, self.method_outputs, None
        elif original.name.value == "forward":
            self.state = None
        return updated

    def visit_SimpleStatementLine(self, rw, node: cst.SimpleStatementLine) -> None:
        if self.state is None:
            return
        before = len(rw.flags())
        self.doubted, self.cascaded = set(), False
        self._statement(rw, node)
        warned = any(f.rule_id == RULE and f.severity != "info" for f in rw.flags(before))
        if self.cascaded or warned:
            self._forget_rewrites(node)  # a flagged statement keeps torch's meaning throughout
        if self.cascaded and not warned and not self.rehearsing:
            self.cascade_lines[id(node)] = self.cascaded

    def leave_SimpleStatementLine(self, rw, original, updated):
        """A line kept as written because it reads a value of unknown layout gets a comment (not a flag: the line
        where the layout became unknown is flagged)."""
        name = self.cascade_lines.pop(id(original), None)
        if name is None or not hasattr(updated, "leading_lines"):
            return updated
        text = (f"# MLX layout: kept as written: `{name}` has an unknown layout here (the line where that began is "
                "flagged)")
        if any(line.comment is not None and line.comment.value.startswith("# MLX layout: kept as written")
               for line in updated.leading_lines):
            return updated  # converted before
        return updated.with_changes(leading_lines=[*updated.leading_lines, cst.EmptyLine(comment=cst.Comment(text))])

    def _statement(self, rw, node: cst.SimpleStatementLine) -> None:
        for small in node.body:
            for target in _assigned_names(small):
                self.ranks.pop(target, None)
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                name = small.targets[0].target.value
                self.scalars.discard(name)
                rank = self._rank(rw, small.value)  # read before the name is rebound (`x = torch.cat((x0, x), 1)`)
                self.state[name] = self._layout(rw, small.value)
                self.ranks.pop(name, None)
                if self.state[name] == Layout.PLAIN and rank is not None:
                    self.ranks[name] = rank
            elif isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Tuple) \
                    and self._uses_cl(small.value):
                target = small.targets[0].target
                layouts = self._unpack(rw, target, small.value)
                if layouts is None:
                    self._doubt(rw, small.value)
                    layouts = [UNKNOWN] * len(target.elements)
                for el, layout in zip(target.elements, layouts):
                    if isinstance(el.value, cst.Name):
                        self.state[el.value.value] = layout
            elif isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name) and self._uses_cl(small):
                left, right = self.state.get(small.target.value, Layout.PLAIN), self._layout(rw, small.value)
                self.state[small.target.value] = self._combine(rw, small, left, right, small.value if left != Layout.PLAIN else small.target,
                                                               (small.target, small.value), augmented=True)
            elif isinstance(small, cst.Assert):
                self._check_test(rw, small.test)
            elif isinstance(small, cst.Return) and small.value is not None:
                values = [el.value for el in small.value.elements] if isinstance(small.value, cst.Tuple) else [small.value]
                self.notes[-1][1].update(self._layout(rw, v) for v in values)
            elif self._uses_cl(small):
                known = [n for n in _names(small) if self.state.get(n.value, Layout.PLAIN) not in (Layout.PLAIN, UNKNOWN, Layout.MIXED)]
                if not known and self._unknown_names(small):
                    self._cascade(rw, small, self._unknown_names(small)[0])
                else:
                    rw.flag(small, RULE, "needs-review", "a channels-last value is used in a statement the layout "
                            "analysis does not follow")

    def visit_If(self, rw, node) -> None:
        self.enter_if(rw, node)

    def visit_Else(self, rw, node) -> None:
        self.enter_else(rw, node)

    def leave_If(self, rw, original, updated):
        self.exit_if(rw, original)
        if not isinstance(updated, cst.If) or not self.join_fix:
            return updated
        body_fixes = self.join_fix.pop(id(original.body), None)
        if body_fixes:
            rw.need_import("mx")
            updated = updated.with_changes(body=with_join_fixes(updated.body, body_fixes))
        if isinstance(original.orelse, cst.Else) and isinstance(updated.orelse, cst.Else):
            else_fixes = self.join_fix.pop(id(original.orelse.body), None)
            if else_fixes:
                rw.need_import("mx")
                updated = updated.with_changes(orelse=updated.orelse.with_changes(
                    body=with_join_fixes(updated.orelse.body, else_fixes)))
        return updated

    def visit_For(self, rw, node) -> None:
        self.enter_loop(rw, node)

    def leave_For(self, rw, original, updated):
        self.exit_loop(rw, original)  # done already where the body ended, unless the loop has an `else`
        return updated

    def leave_IndentedBlock(self, rw, original, updated):
        """A loop is checked where its body ends, while the pass is still in the loop's statement: what it flags
        goes above the `for` / `while` line (by `leave_For` the pass has left it: above the enclosing `def`). A
        loop with an `else` is checked after that branch, in `leave_For`."""
        top = self.frames[-1] if self.state is not None and self.frames else None
        if top is not None and isinstance(top["node"], (cst.For, cst.While)) and top["node"].body is original \
                and top["node"].orelse is None:
            self.exit_loop(rw, top["node"])
        return updated

    visit_While = visit_For
    leave_While = leave_For

    def _flag_compound(self, rw, node) -> None:
        """try / with / match over channels-last values: not followed."""
        if self.state is not None and self._uses_cl(node):
            rw.flag(node, RULE, "needs-review", "control flow over channels-last values: the layout analysis follows "
                    "straight-line code, if/else and loops only")
            self.state = {k: Layout.MIXED for k in self.state}

    def visit_Try(self, rw, node) -> None:
        self._flag_compound(rw, node)

    visit_Match = visit_Try

    def _uses_cl(self, node) -> bool:
        return any(self.state.get(n.value, Layout.PLAIN) != Layout.PLAIN for n in _names(node))

    def _cl(self, node) -> Optional[str]:
        if isinstance(node, cst.Name):
            layout = self.state.get(node.value, Layout.PLAIN)
            return None if layout == Layout.PLAIN else layout
        return None

    def _layout(self, rw, e) -> str:
        """The layout of an expression; schedules rewrites and flags what it cannot follow."""
        if not self._uses_cl(e) and not self._feeds_layer(e):
            return Layout.PLAIN
        if isinstance(e, cst.Call) and isinstance(e.func, cst.Attribute) and e.func.attr.value == "permute" \
                and not self._uses_cl(e.func.value):
            return self._to_channels_first(e, list(e.args)) or self._plain_call(rw, e)  # NHWC -> NCHW: channels-last
        if isinstance(e, cst.Name):
            if self.state[e.value] == Layout.MIXED:
                if e.value in self.mixed_reported:
                    self._cascade(rw, e, e.value)
                else:
                    rw.flag(e, RULE, "needs-review", f"`{e.value}` is channels-last on some paths here and not on "
                            "others (if/else or a loop): the analysis cannot follow it")
                    self.mixed_reported.add(e.value)
                self.doubted.add(id(e))
                return UNKNOWN
            return self.state[e.value]
        if isinstance(e, cst.BinaryOperation):
            left, right = self._layout(rw, e.left), self._layout(rw, e.right)
            return self._combine(rw, e, left, right, e.right if left != Layout.PLAIN else e.left, (e.left, e.right))
        if isinstance(e, cst.UnaryOperation):
            inner = self._layout(rw, e.expression)
            return Layout.PLAIN if isinstance(e.operator, cst.Not) else inner
        if isinstance(e, cst.Comparison):
            if all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in e.comparisons):
                return Layout.PLAIN  # identity, not values: `x is None`
            parts = [e.left, *(c.comparator for c in e.comparisons)]
            return Layout.PLAIN if all(self._layout(rw, p) == Layout.PLAIN for p in parts) else self._doubt(rw, e)
        if isinstance(e, cst.BooleanOperation):
            return Layout.PLAIN if self._layout(rw, e.left) == Layout.PLAIN and self._layout(rw, e.right) == Layout.PLAIN else self._doubt(rw, e)
        if isinstance(e, cst.Attribute) and e.attr.value in ("dtype", "ndim", "device", "is_cuda") \
                and self._layout(rw, e.value) not in (Layout.MIXED, UNKNOWN):
            return Layout.PLAIN
        if isinstance(e, (cst.Tuple, cst.List)):
            # a sequence of values: plain when all are; of one channels-last layout: `Seq(<layout>)` (torch.cat of it
            # is remapped, anything else that reads it is flagged)
            if any(isinstance(el, cst.StarredElement) for el in e.elements):
                return self._doubt(rw, e)
            layouts = {self._layout(rw, el.value) for el in e.elements}
            if layouts <= {Layout.PLAIN}:
                return Layout.PLAIN
            layout = layouts.pop() if len(layouts) == 1 else None
            return Seq(layout) if layout in RANK else self._doubt(rw, e)
        if isinstance(e, cst.Subscript):
            return self._subscript(rw, e)
        if isinstance(e, cst.Call):
            return self._call(rw, e)
        return self._doubt(rw, e)

    def _feeds_layer(self, e) -> bool:
        """Whether `e` calls a channels-last layer of this class (or permutes): a plain value fed to it needs a transpose."""
        layers, loops = self.layers or {}, self.loop_modules

        class _Find(cst.CSTVisitor):
            found = False

            def visit_Call(self, node: cst.Call) -> None:
                func = node.func
                if isinstance(func, cst.Attribute) and func.attr.value == "permute":
                    _Find.found = True
                elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                    _Find.found = _Find.found or layers.get(func.attr.value) not in (None, Layout.PER_POSITION)
                elif isinstance(func, cst.Name) and func.value in loops:
                    _Find.found = True

        e.visit(_Find())
        return _Find.found

    def _plain_call(self, rw, e: cst.Call) -> str:
        """A call on plain values: its arguments may still feed a layer."""
        for arg in e.args:
            self._layout(rw, arg.value)
        self._layout(rw, e.func.value) if isinstance(e.func, cst.Attribute) else None
        return Layout.PLAIN

    def _rank(self, rw, e) -> Optional[int]:
        """The rank of a tensor expression where this can tell (joins reconcile names of a known rank only)."""
        if isinstance(e, cst.Name):
            layout = self.state.get(e.value, Layout.PLAIN)
            return self.ranks.get(e.value) if layout == Layout.PLAIN else RANK.get(layout)
        if isinstance(e, cst.BinaryOperation):
            if self._is_scalar(e.left) or isinstance(e.left, cst.Float):
                return self._rank(rw, e.right)
            if self._is_scalar(e.right) or isinstance(e.right, cst.Float):
                return self._rank(rw, e.left)
            left, right = self._rank(rw, e.left), self._rank(rw, e.right)
            return left if left == right else None
        if isinstance(e, cst.Subscript) and isinstance(e.value, cst.Name) and shape_source(e.value) is None:
            rank = self._rank(rw, e.value)
            parts = [el.slice for el in e.slice]
            if rank is None or len(parts) > rank:
                return None
            ints = [p for p in parts if isinstance(p, cst.Index) and p.star is None and _int(p.value) is not None]
            if len(ints) + sum(isinstance(p, cst.Slice) for p in parts) != len(parts):
                return None
            return rank - len(ints)
        if isinstance(e, cst.Call):
            self_qual = None
            func = e.func
            args = [a.value for a in e.args if a.keyword is None and not a.star]
            if len(args) != len(e.args):
                return None
            if isinstance(func, cst.Attribute) and func.attr.value == "unsqueeze" and len(args) == 1:
                inner = self._rank(rw, func.value)
                return inner + 1 if inner is not None else None
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                self_qual = (self.layers or {}).get(func.attr.value)
                return self._rank(rw, args[0]) if self_qual in (Layout.PER_POSITION, Layout.NCHW) and len(args) == 1 else None
            qual = rw.qualified_name(func)
            if qual == "torch.unsqueeze" and len(args) == 2:
                inner = self._rank(rw, args[0])
                return inner + 1 if inner is not None else None
            if qual == "torch.cat" and args and isinstance(args[0], (cst.List, cst.Tuple)):
                ranks = {self._rank(rw, el.value) for el in args[0].elements}
                return ranks.pop() if len(ranks) == 1 else None
            if qual in FUNCTIONS and len(args) == 1:
                return self._rank(rw, args[0])
        return None

    def _plain_args(self, rw, e: cst.Call, rest: list) -> str:
        """A call whose tensor argument is in torch's layout: plain when the other arguments are too."""
        return Layout.PLAIN if all(self._layout(rw, a.value) == Layout.PLAIN for a in rest) else self._doubt(rw, e)

    def _combine(self, rw, node, left: str, right: str, plain_side, operands: tuple = (), augmented: bool = False) -> str:
        """`a + b`: one layout on both sides, or one side a number. A channels-last name with a tensor in torch's
        layout: the name is transposed back to torch's layout there (the result is in torch's layout); for
        `x += t`, `t` is transposed to channels-last when its rank is known to be the layout's."""
        layouts = {x for x in (left, right) if x != Layout.PLAIN}
        if not layouts:
            return Layout.PLAIN
        if UNKNOWN in layouts:  # the same unknown layout on both sides is not known either
            return UNKNOWN if Layout.PLAIN in (left, right) and self._is_scalar(plain_side) else self._doubt(rw, node)
        if len(layouts) == 1 and (left == right or self._is_scalar(plain_side)):
            return layouts.pop()
        if layouts == {Layout.POOLED, Layout.CL2}:  # (N, 1, 1, C) broadcast over a (N, H, W, C) map, as (N, C, 1, 1) over torch's
            return Layout.CL2
        if len(layouts) == 1 and Layout.PLAIN in (left, right) and operands and next(iter(layouts)) in RANK:
            layout = layouts.pop()
            full = Layout.CL2 if layout == Layout.POOLED else layout
            cl_node, plain_node = operands if left != Layout.PLAIN else operands[::-1]
            if augmented and cl_node is operands[0]:  # `x += t`: t goes channels-last (a tensor of x's rank)
                if isinstance(plain_node, cst.Name) and self._rank(rw, plain_node) == RANK[layout]:
                    self.replace[id(plain_node)] = _transpose(plain_node, TO_CL[full])
                    rw.need_import("mx")
                    return layout
            elif isinstance(cl_node, cst.Name):  # torch's value of the name, in torch's layout: exact at any rank
                self.replace[id(cl_node)] = _transpose(cl_node, TO_TORCH[full])
                rw.need_import("mx")
                return Layout.PLAIN
        return self._doubt(rw, node)

    def _is_scalar(self, node) -> bool:
        """A number: a literal, a size read off `.shape[i]`, or an arithmetic of them (not a tensor)."""
        if isinstance(node, (cst.Integer, cst.Float)):
            return True
        if isinstance(node, cst.UnaryOperation):
            return self._is_scalar(node.expression)
        if isinstance(node, cst.BinaryOperation):
            return self._is_scalar(node.left) and self._is_scalar(node.right)
        if isinstance(node, cst.Subscript) and shape_source(node.value) is not None:
            return len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)
        return isinstance(node, cst.Name) and node.value in self.scalars

    def _doubt(self, rw, e, cause: str = "") -> str:
        """Flag `e` (once: not again where it only passes on a doubt flagged inside it); its value is UNKNOWN.
        Where `e` reads a value whose layout is unknown already (flagged where it became so), the line is kept as
        written with an `info` note naming that value: one cause, one warning (not one per later line)."""
        inside = {id(n) for n in _walk_nodes(e)}
        if not inside & self.doubted:
            unknown = self._unknown_names(e)
            if unknown:
                self._cascade(rw, e, unknown[0])
            else:
                rw.flag(e, RULE, "needs-review", f"{cause}cannot tell how this depends on the axis order of a "
                        "channels-last value (MLX convolutions/pools/norms are NHWC, torch's NCHW)")
        self.doubted.add(id(e))
        self._forget_rewrites(e)
        return UNKNOWN

    def _unknown_names(self, e) -> list:
        """Names read in `e` whose layout the analysis gave up on earlier (flagged there)."""
        return [n.value for n in _names(e) if self.state.get(n.value) == UNKNOWN
                or (self.state.get(n.value) == Layout.MIXED and n.value in self.mixed_reported)]

    def _cascade(self, rw, e, name: str) -> None:
        rw.flag(e, RULE, "needs-review", f"left as written: `{name}` has an unknown layout here (channels-last or "
                "not: the line where that began is flagged)", "info")
        self.cascaded = self.cascaded or name

    def _forget_rewrites(self, e) -> None:
        """A flagged expression keeps torch's meaning: drop the layout rewrites planned inside it (a permute
        made an identity, remapped axes), which are right only if the whole expression is followed."""
        if not (self.rebuild or self.replace or self.reindex or self.to_channels_last or self.unwrap or self.arg_transposes):
            return
        inside = {id(n) for n in _walk_nodes(e)}
        for planned in (self.rebuild, self.replace, self.reindex, self.to_channels_last, self.arg_transposes):
            for key in inside.intersection(planned):
                del planned[key]
        self.unwrap -= inside

    def _call(self, rw, e: cst.Call) -> str:
        func = e.func
        args = [a for a in e.args]
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            method = self._methods(self.cls_node).get(func.attr.value)
            if method is not None and func.attr.value not in (self.layers or {}):
                return self._self_method(rw, e, method)
            return self._submodule_call(rw, e, (self.layers or {}).get(func.attr.value))
        if isinstance(func, cst.Name) and func.value in self.loop_modules:
            return self._submodule_call(rw, e, self.loop_modules[func.value])
        qual = rw.qualified_name(func)
        if qual in LAYOUT_FUNCTIONS and args and not args[0].keyword and not args[0].star:
            return self._layout_function(rw, e, LAYOUT_FUNCTIONS[qual])
        if qual in FUNCTIONS and args and not args[0].keyword:
            return self._layout(rw, args[0].value)
        if qual in ("torch.flatten",) and args:
            if self._layout(rw, args[0].value) == Layout.PLAIN:
                return self._plain_args(rw, e, args[1:])
            return self._flatten(rw, e, args[0].value, args[1:])
        if qual == "torch.cat" and args and not args[0].keyword and not args[0].star:
            if isinstance(args[0].value, (cst.List, cst.Tuple)):
                layouts = {self._layout(rw, el.value) for el in args[0].value.elements}
            else:  # `outputs = [branch1, branch2]` ... `torch.cat(outputs, 1)`
                seq = self._layout(rw, args[0].value)
                layouts = {seq.of if isinstance(seq, Seq) else (seq if seq == Layout.PLAIN else UNKNOWN)}
            dim = args[1] if len(args) > 1 else None
            if layouts <= {Layout.PLAIN}:  # torch's values in, torch's value out
                return self._plain_args(rw, e, args[1:])
            if len(layouts) == 1 and dim is not None and _axis(next(iter(layouts)), _int(dim.value)) is not None:
                layout = layouts.pop()
                self.replace[id(dim.value)] = cst.Integer(str(AXES[layout][_int(dim.value)]))
                return layout
            return self._doubt(rw, e)
        if qual is not None and args and not args[0].keyword and not args[0].star:
            layout = self._layout(rw, args[0].value)
            if layout == Layout.PLAIN:  # a torch function of values in torch's layout gives one in torch's layout
                return self._plain_args(rw, e, args[1:])
            found = self._function(rw, qual, e, layout) if layout in RANK else None
            return found if found is not None else self._doubt(rw, e)
        if isinstance(func, cst.Attribute):
            return self._method_call(rw, e, func, args)
        if isinstance(func, cst.Name) and qual is None and self._plain_function(func.value):
            return self._torch_layout_call(rw, e)
        return self._doubt(rw, e)

    def _plain_function(self, name: str) -> bool:
        """A module-level function of this file (bound once, not shadowed here): it computes in torch's layout
        (nn-script-layers transposes around the channels-last layers it calls)."""
        return (name in self.functions and len(self.module_names.get(name, [])) == 1 and name not in self.state
                and name not in self.loop_modules)

    def _torch_layout_call(self, rw, e: cst.Call) -> str:
        """`channel_shuffle(x, 2)` of a channels-last `x`: the function gets torch's layout (a transpose of each
        channels-last argument) and gives a value in torch's layout."""
        moves = []
        for i, arg in enumerate(e.args):
            layout = self._layout(rw, arg.value)
            if layout in (Layout.MIXED, UNKNOWN) or (layout != Layout.PLAIN and (arg.star or layout not in RANK)):
                return self._doubt(rw, e, f"`{cst.Module([]).code_for_node(e.func)}`: ")
            if layout != Layout.PLAIN:
                moves.append((i, TO_TORCH[Layout.CL2 if layout == Layout.POOLED else layout]))
        if moves:
            self.arg_transposes[id(e)] = moves
            rw.need_import("mx")
        return Layout.PLAIN

    def _to_channels_first(self, e: cst.Call, args: list) -> Optional[str]:
        """`y.permute(0, 3, 1, 2)` of a plain NHWC value: torch's NCHW result is `y` itself as a channels-last value."""
        dims = [_int(a.value) for a in args if a.keyword is None and not a.star]
        if len(dims) != len(args) or None in dims:
            return None
        for layout, perm in TO_TORCH.items():
            if str(tuple(dims)) == perm:
                self.rebuild[id(e)] = SAME
                return layout
        return None

    def _submodule_call(self, rw, e: cst.Call, kind) -> str:
        """`self.conv(x)` (or a block of a followed loop): the layer's effect on its argument's layout."""
        args = list(e.args)
        if len(args) != 1 or args[0].keyword or args[0].star:
            return self._doubt(rw, e)
        inner = self._layout(rw, args[0].value)
        if kind == Layout.PER_POSITION:
            return inner
        if kind == Layout.NCHW and inner in RANK:
            # a layer built from a torch layer class value takes torch's layout (nn-layer-values): transposed there
            self.to_channels_last[id(e)] = TO_TORCH[Layout.CL2 if inner == Layout.POOLED else inner]
            return Layout.PLAIN
        if kind == Layout.NCHW and inner == Layout.PLAIN:
            return Layout.PLAIN
        if isinstance(kind, ToPlain):  # a class of this file: channels-last in, torch's out
            need = kind.of
            if inner == Layout.PLAIN:
                self.to_channels_last[id(e)] = TO_CL[need]
                return Layout.PLAIN
            if inner == need or (need, inner) == (Layout.CL2, Layout.POOLED):
                return Layout.PLAIN
        if inner == Layout.PLAIN and kind in SPATIAL.values():
            # a value in torch's layout fed to a channels-last layer: transpose it there (exact)
            self.to_channels_last[id(e)] = TO_CL[Layout.CL2 if kind == Layout.POOLED else kind]
            return kind
        what = cst.Module([]).code_for_node(e.func)
        if kind == Layout.UNFOLLOWED:
            cause = (f"`{what}` holds channels-last layers next to modules the analysis cannot follow or that take "
                     "torch's layout (layers built from class values): ")
        elif kind in (None, _UNPROVEN):
            cause = f"`{what}` is a module whose layout the analysis does not know: "
        else:
            cause = f"`{what}`: "
        if inner == Layout.PLAIN:
            return inner if kind is None else self._doubt(rw, e, cause)  # _UNPROVEN included
        if inner == UNKNOWN and kind in SPATIAL.values():  # its input may be either layout; its output is channels-last
            self._doubt(rw, e, cause)
            return kind
        if inner == UNKNOWN and kind != Layout.PER_POSITION:
            return self._doubt(rw, e, cause)
        if kind == Layout.KEEP:  # upsampling a (N, 1, 1, C) map gives a real feature map
            return Layout.CL2 if inner == Layout.POOLED else inner
        if kind in SPATIAL.values():
            return kind
        return self._doubt(rw, e, cause)

    def _method_call(self, rw, e: cst.Call, func: cst.Attribute, args: list) -> str:
        receiver = func.value
        layout = (self._cl(receiver) or Layout.PLAIN) if isinstance(receiver, cst.Name) else self._layout(rw, receiver)
        if layout == Layout.PLAIN:  # e.g. `y.view(x.size(0), -1)`: the arguments may still read a channels-last value
            if func.attr.value == "permute" and (back := self._to_channels_first(e, args)) is not None:
                return back
            return Layout.PLAIN if all(self._layout(rw, a.value) == Layout.PLAIN for a in args) else self._doubt(rw, e)
        if layout in (Layout.MIXED, UNKNOWN) or layout not in RANK:
            return self._doubt(rw, e)
        method = func.attr.value
        if isinstance(receiver, cst.Name):
            if method in ("view", "reshape") and len(args) == 2 and _int(args[1].value) == -1 and self._is_batch(args[0].value, receiver):
                return self._flatten(rw, e, receiver, [])
            if method == "flatten" and len(args) == 1 and _int(args[0].value) == 1:
                return self._flatten(rw, e, receiver, [])
        if method in ("view", "reshape") and layout == Layout.CL2 and len(args) == 3 \
                and all(not a.keyword and not a.star and self._layout(rw, a.value) == Layout.PLAIN for a in args):
            # ViT's `x.reshape(n, hidden_dim, n_h * n_w)` after the patch convolution: torch's (N, C, H*W) is MLX's
            # (N, H*W, C) when the sizes are (N, C, H*W); reshape_channels_last checks that at run time
            self.rebuild[id(e)] = _RESHAPE
            return Layout.CL1
        elif method == "flatten" and len(args) == 1 and _int(args[0].value) == 1 and not args[0].keyword:
            if layout != Layout.POOLED:  # a 1x1 map flattens alike in both layouts; a feature map goes back to torch's order
                self.rebuild[id(e)] = lambda x, perm=TO_TORCH_AXES[layout]: mx_call("flatten", mx_call("transpose", x, perm), 1)
            return Layout.PLAIN
        if method == "size" and len(args) == 1 and _axis(layout, _int(args[0].value)) is not None:
            self.replace[id(args[0].value)] = cst.Integer(str(AXES[layout][_int(args[0].value)]))
            return Layout.PLAIN
        found = self._method(rw, e, layout)
        return found if found is not None else self._doubt(rw, e)

    def _layout_function(self, rw, e: cst.Call, kind: str) -> str:
        """F.interpolate & co. of a feature map: run channels-last, without the transposes of the NCHW form."""
        inner = self._layout(rw, e.args[0].value)
        rest = e.args[1:]
        if inner not in (Layout.CL2, Layout.POOLED):
            return self._doubt(rw, e)
        if any(self._layout(rw, a.value) != Layout.PLAIN for a in rest):  # e.g. size=skip.shape[2:] is remapped
            return self._doubt(rw, e)
        self.unwrap.add(id(e))
        if kind == Resampled.SPATIAL:
            return Layout.CL2
        if kind == Resampled.POOL:
            size = rest[0] if rest and (rest[0].keyword is None or rest[0].keyword.value == "output_size") else None
            return Layout.POOLED if size is not None and _is_one(size.value) else Layout.CL2
        return Layout.CL2 if inner == Layout.POOLED else inner

    def _is_batch(self, node, tensor) -> bool:
        """`x.size(0)` / `x.shape[0]` of the same name: the batch axis is first in both layouts."""
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "size":
            return len(node.args) == 1 and _int(node.args[0].value) == 0
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape":
            return len(node.slice) == 1 and _int(getattr(node.slice[0].slice, "value", None)) == 0
        return False

    def _flatten(self, rw, e, tensor, rest) -> str:
        layout = self._cl(tensor)
        if layout not in (Layout.POOLED, *TO_TORCH) or (rest and _int(rest[0].value) != 1) or len(rest) > 1:
            return self._doubt(rw, e)
        if layout != Layout.POOLED:
            mx = sentinel("mx")
            self.replace[id(tensor)] = cst.parse_expression(f"{mx}.transpose({tensor.value}, {TO_TORCH[layout]})")
            rw.need_import("mx")
        return Layout.PLAIN

    def _subscript(self, rw, e: cst.Subscript) -> str:
        if shape_source(e.value) is not None and len(e.slice) == 1:  # x.shape[i], x.size()[i]
            layout = self._cl(shape_source(e.value))
            index = _int(getattr(e.slice[0].slice, "value", None))
            if _axis(layout, index) is not None:
                self.replace[id(e.slice[0].slice.value)] = cst.Integer(str(AXES[layout][index]))
                return Layout.PLAIN
            part = e.slice[0].slice
            rank = RANK.get(layout)
            if rank and isinstance(part, cst.Slice) and _int(part.lower) in (2, 2 - rank) and part.step is None \
                    and (part.upper is None or _int(part.upper) == rank):  # the spatial sizes (H, W)
                self.replace[id(part)] = part.with_changes(lower=cst.Integer("1"), upper=cst.Integer(str(rank - 1)))
                return Layout.PLAIN
            return self._doubt(rw, e)
        layout = self._layout(rw, e.value)
        if layout == Layout.PLAIN:
            ok = all(self._layout(rw, el.slice.value if isinstance(el.slice, cst.Index) else el.slice) == Layout.PLAIN
                     for el in e.slice if not isinstance(el.slice, cst.Slice))
            return Layout.PLAIN if ok else self._doubt(rw, e)
        found = self._index(e, layout) if layout in RANK else None
        return found if found is not None else self._doubt(rw, e)

    # ----- rewrites scheduled above --------------------------------------------------------------
    def leave_Name(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_Integer(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_UnaryOperation(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_Tuple(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_Subscript(self, rw, original, updated):
        return self.reindexed(original, updated) if id(original) in self.reindex else updated

    def leave_Slice(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    # ----- call sites: feed a channels-last class NHWC data -----------------------------------------
    def visit_Module(self, rw, node: cst.Module) -> None:
        self.module_names = _bindings(node)
        self.partial_names = _functools_partial_names(node, self.module_names)
        facts = rw.project_layout_builders
        self.imported = dict(facts.classes) if isinstance(facts, ProjectLayouts) else {}
        self.functions = {stmt.name.value: stmt for stmt in node.body if isinstance(stmt, cst.FunctionDef)}
        self.class_defs = {stmt.name.value: stmt for stmt in node.body if isinstance(stmt, cst.ClassDef)}
        self._constructions, self._scope_bindings, self._module_node = None, {}, node
        self._calls_walk = None
        self._cl_memo, self._checking = {}, set()
        self._owners, self._scope_calls, self._spatial_memo, self._self_stores, self._indirect = {}, {}, {}, {}, {}
        for cls in self.class_defs.values():
            for inner in find(cls.body, (cst.Call, cst.FunctionDef)):
                self._owners[id(inner)] = cls
        self._find_own_classes(rw, node)
        classes = {}
        for stmt in node.body:
            if isinstance(stmt, cst.ClassDef) and (layers := self._class_layers(rw, stmt)) is not None:
                forward = next((s for s in stmt.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward"), None)
                inputs = [p for p in forward.params.params[1:] if p.default is None] if forward else []
                first = self._input_layout(rw, stmt, layers)
                if inputs:
                    classes[stmt.name.value] = (TO_CL[first], len(inputs))
        self.calls = _Instances(node, classes, self._module_calls()) if classes else None

    def _find_own_classes(self, rw, module: cst.Module) -> None:
        """Classes whose forward, analysed without a single flag, maps one channels-last input to a channels-last
        output: they can be used like a convolution inside other classes (repeated until nothing changes, so
        the order of definition does not matter)."""
        self.own, self.promoted = {}, set()
        defs = [s for s in module.body if isinstance(s, cst.ClassDef)]
        for _ in range(len(defs)):
            found = {}
            for stmt in defs:
                layout = self._dry_run(rw, stmt)
                if layout is not None:
                    found[stmt.name.value] = layout
            promoted = self._promote(rw, defs, found)
            if found == self.own and not promoted:
                break
            self.own = found

    def _promote(self, rw, defs: list, own: dict) -> bool:
        """A class with no channels-last layer of its own (a LayerNorm2d written with permutes, a gate) that
        channels-last classes build, and whose forward maps a channels-last input to a channels-last output
        without a flag, is made channels-last too: inside those classes it needs no transposes."""
        changed = False
        self._cl_memo = {}
        channels_last = {d.name.value for d in defs if self._class_layers(rw, d) is not None}
        if not channels_last:
            return False  # no channels-last class to build them
        for stmt in defs:
            name = stmt.name.value
            if name in self.promoted or name in own or self._class_layers(rw, stmt) is not None:
                continue
            builders = {owner for _, _, owner in self.constructions().get(name, []) if owner is not None}
            if not builders & channels_last:
                continue
            self.promoted.add(name)
            layout = self._dry_run(rw, stmt)
            if layout in (Layout.CL2, Layout.CL1, Layout.CL3):
                own[name] = layout
                changed = True
            else:
                self.promoted.discard(name)
        self._cl_memo = {}
        return changed

    @staticmethod
    def _forward(node: cst.ClassDef) -> Optional[cst.FunctionDef]:
        return next((s for s in node.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward"), None)

    def _dry_run(self, rw, node: cst.ClassDef) -> Optional[str]:
        layers = self._class_layers(rw, node)
        forward = self._forward(node)
        self._method_results = {}  # what the class's layers do may have changed since the last dry run
        if layers is None or forward is None:
            return None
        params = forward.params
        inputs = [p.name.value for p in params.params[1:]]
        if (len(inputs) != 1 or params.params[1].default is not None or params.posonly_params or params.kwonly_params
                or params.star_arg is not cst.MaybeSentinel.DEFAULT or params.star_kwarg is not None):
            return None
        first = self._input_layout(rw, node, layers)
        out = self._analyse(rw, node, forward, {inputs[0]: first}, layers)
        if out == Layout.PLAIN and first in _CHANNELS_LAST:  # a head (InceptionAux): channels-last in, torch's layout out
            return ToPlain(first)
        return out if (first, out) in ((Layout.CL2, Layout.CL2), (Layout.CL2, Layout.POOLED), (Layout.CL1, Layout.CL1), (Layout.CL3, Layout.CL3)) else None

    def _analyse(self, rw, cls: cst.ClassDef, function: cst.FunctionDef, state: dict, layers: dict) -> Optional[str]:
        """Follow a method of `cls` ahead of the pass from the layouts `state` of its parameters: the one layout it
        returns, or None when anything in it is flagged (or it returns several)."""
        saved, self.fwd = self.fwd, _Followed(state=dict(state), layers=layers, notes=[[list(state), set(), 0]], cls_node=cls)
        dry = _Rehearsal(rw)
        self.rehearsing += 1
        try:
            function.body.visit(_Statements(self, dry))
            outputs = self.notes[-1][1]
        finally:
            self.fwd = saved
            self.rehearsing -= 1
        if dry.flagged or len(outputs) != 1:
            return None
        return next(iter(outputs))

    # ----- self.forward_features(x): methods of a channels-last class called from its forward ----------------
    def _self_method(self, rw, e: cst.Call, function: cst.FunctionDef) -> str:
        """`self.forward_features(x)`: the method is followed from the layouts of the arguments (the same at every
        call) and its body rewritten for them in the pass; the call is flagged when anything in it is not followed
        (and that is flagged in the method)."""
        params = function.params
        names = [p.name.value for p in params.params[1:]]
        if (params.posonly_params or params.kwonly_params or params.star_arg is not cst.MaybeSentinel.DEFAULT
                or params.star_kwarg is not None or any(a.star for a in e.args) or function.asynchronous is not None):
            return self._doubt(rw, e)
        state = {name: Layout.PLAIN for name in names}
        positional = [a for a in e.args if a.keyword is None]
        if len(positional) > len(names) or any(a.keyword is not None and a.keyword.value not in names for a in e.args):
            return self._doubt(rw, e)
        for name, arg in zip(names, positional):
            state[name] = self._layout(rw, arg.value)
        for arg in e.args:
            if arg.keyword is not None:
                state[arg.keyword.value] = self._layout(rw, arg.value)
        layouts = tuple(state[n] for n in names)
        if any(v in (Layout.MIXED, UNKNOWN) for v in layouts) or id(function) in self._checking:
            return self._doubt(rw, e)
        key = (id(function), layouts)
        if key not in self._method_results:
            self._checking.add(id(function))
            try:
                self._method_results[key] = self._analyse(rw, self.cls_node, function, state, self.layers)
            finally:
                self._checking.discard(id(function))
        out = self._method_results[key]
        # the pass follows the method from these layouts (flagging in it what it cannot follow)
        if self.method_plans.setdefault(id(function), state) != state:
            return self._doubt(rw, e, f"`{function.name.value}` is called with other layouts elsewhere: ")
        if out is None:  # not followed throughout: flagged in the method, where the cause is
            if not {id(n) for n in _walk_nodes(e)} & self.doubted:
                rw.flag(e, RULE, "needs-review", f"left as written: what `{function.name.value}` returns has an unknown "
                        "layout (flagged in it)", "info")
                self.cascaded = self.cascaded or function.name.value
            self.doubted.add(id(e))
            self._forget_rewrites(e)
            return UNKNOWN
        return out

    def _methods(self, cls: Optional[cst.ClassDef]) -> dict:
        if cls is None:
            return {}
        return {s.name.value: s for s in cls.body.body
                if isinstance(s, cst.FunctionDef) and s.name.value not in ("forward", "__init__")}

    def _rebuilt(self, rw, original: cst.Call, updated):
        build = self.rebuild.pop(id(original))
        receiver = _receiver(original, updated) if isinstance(updated, cst.Call) else None
        if receiver is None:
            rw.flag(original, RULE, "needs-review", "the layout analysis could not rewrite this call for channels-last data")
            return updated
        if build is SAME:
            rw.mark_identity(receiver)  # `x = x` left by it is dropped
            return receiver.with_changes(lpar=original.lpar, rpar=original.rpar) if original.lpar else receiver
        if build is _RESHAPE:
            try:
                reshape = add_helpers(rw, ["reshape_channels_last"], {"reshape_channels_last": RESHAPE_CHANNELS_LAST})["reshape_channels_last"]
            except Flag as flag:
                rw.flag(original, RULE, "no-equivalent", f"a reshape of a channels-last map: {flag.reason}")
                return updated
            sizes = [a.value for a in updated.args[1:]] if _is_mx_call(updated) else [a.value for a in updated.args]
            if len(sizes) == 1 and isinstance(sizes[0], (cst.Tuple, cst.List)):  # mx.reshape(x, (n, c, length))
                sizes = [el.value for el in sizes[0].elements]
            if len(sizes) != 3 or any(isinstance(v, cst.StarredElement) for v in sizes):
                rw.flag(original, RULE, "needs-review", "the layout analysis could not rewrite this call for channels-last data")
                return updated
            args = [cst.Arg(receiver, comma=_COMMA), *(cst.Arg(v, comma=_COMMA) for v in sizes[:2]), cst.Arg(sizes[2])]
            return cst.Call(func=cst.Name(reshape), args=args, lpar=original.lpar, rpar=original.rpar)
        rw.need_import("mx")
        return build(receiver)

    def _is_partial(self, rw, func) -> bool:
        """`partial` bound once in the module, by `from functools import partial` (or `functools.partial`)."""
        if isinstance(func, cst.Name):
            return func.value in self.partial_names
        return isinstance(func, cst.Attribute) and func.attr.value == "partial" and isinstance(func.value, cst.Name) \
            and f"functools.{func.value.value}" in self.partial_names

    def _adapted_call(self, rw, original: cst.Call, updated):
        """`se_layer(c)` in a class built in torch's layout (`_adapted_class_value`):
        `torch_layout_module(se_layer(c), SqueezeExcitation)`."""
        classes = self.adapted.pop(id(original))
        try:
            layout_module = add_helpers(rw, ["torch_layout_module"], {"torch_layout_module": TORCH_LAYOUT_MODULE})["torch_layout_module"]
        except Flag as flag:
            rw.flag(original, RULE, "no-equivalent", f"the class is built in torch's layout: {flag.reason}")
            return updated
        rw.need_import("mx")
        args = [cst.Arg(updated, comma=_COMMA), *(cst.Arg(cst.Name(c), comma=_COMMA) for c in classes)]
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.Call(func=cst.Name(layout_module), args=args)

    def leave_Call(self, rw, original: cst.Call, updated):
        if id(original) in self.adapted and (owner := self._owners.get(id(original))) is not None \
                and id(owner) in self.demoted:
            return self._adapted_call(rw, original, updated)
        if self.demoted and (owner := self._owners.get(id(original))) is not None and id(owner) in self.demoted \
                and _torch_layout_helper(rw, original) is not None:
            return self._torch_layout_layer(rw, original, updated)
        if id(original) in self.rebuild_cl:
            return self._channels_last_call(rw, original, updated)
        if id(original) in self.class_checks:
            return self._checked_class_call(rw, original, updated)
        if id(original) in self.rebuild:
            return self._rebuilt(rw, original, updated)
        if id(original) in self.arg_transposes and isinstance(updated, cst.Call) and len(updated.args) == len(original.args):
            args = list(updated.args)
            for i, perm in self.arg_transposes.pop(id(original)):
                args[i] = args[i].with_changes(value=_transpose(args[i].value, perm))
            return updated.with_changes(args=args)
        if id(original) in self.to_channels_last and isinstance(updated, cst.Call) and updated.args:
            rw.need_import("mx")
            first = updated.args[0]
            perm = self.to_channels_last.pop(id(original))
            return updated.with_changes(args=[first.with_changes(value=_transpose(first.value, perm)), *updated.args[1:]])
        if id(original) in self.unwrap:
            self.unwrap.discard(id(original))
            return _without_transposes(updated)
        if self.calls is None or self.state is not None or not isinstance(updated, cst.Call):
            return updated
        found = self.calls.callee(original.func, self.class_stack)
        if found is None:
            return updated
        proven, cls = found
        perm, n_inputs = self.calls.classes[cls]
        args = updated.args
        if not proven or len(args) != n_inputs or any(a.keyword or a.star for a in args):
            rw.flag(original, RULE, "needs-review", f"{cls} takes channels-last input in MLX: its input here must be "
                    "NHWC/NLC (e.g. mx.transpose(x, (0, 2, 3, 1)) for an NCHW batch); the analysis cannot prove "
                    "which object is called or how it is called")
            return updated
        rw.need_import("mx")
        call = updated.with_changes(args=[a.with_changes(value=_transpose(a.value, perm)) for a in args])
        outputs = self.outputs.get(cls)
        if outputs is not None and outputs <= {Layout.PLAIN} and outputs:
            return call
        if outputs in ({Layout.CL2}, {Layout.POOLED}, {Layout.CL1}, {Layout.CL3}):
            return _transpose(call, TO_TORCH[Layout.CL2 if outputs == {Layout.POOLED} else next(iter(outputs))])
        rw.flag(original, RULE, "needs-review", f"{cls} may return channels-last feature maps in MLX (NHWC/NLC, "
                "torch's are NCHW/NCL): check how the result is used")
        return call






# the transform and its mixins (ops.py, flow.py) read and set these as their own attributes
for _name in (f.name for f in fields(_Followed)):
    setattr(NnLayoutTransform, _name, property(lambda self, name=_name: getattr(self.fwd, name),
                                               lambda self, value, name=_name: setattr(self.fwd, name, value)))

_ABSENT = Layout.ABSENT  # an attribute set to None (or not at all) on some path of __init__: not a module there
_CHANNELS_LAST = CHANNELS_LAST
# `self.block = Block(...)` for a class of this file that takes channels-last input but is not proven to keep it
# channels-last: what it is fed and what it gives are flagged (it does not make its owner channels-last)
_UNPROVEN = Layout.UNPROVEN


def _either(a, b):
    """What a submodule that is `a` on some paths of __init__ and `b` on others does to a layout. Identity (or a
    per-position layer) or a channels-last layer: a channels-last input stays channels-last either way ("keep";
    a value in torch's layout is flagged). Anything else that differs: not known (None)."""
    if a == b or b is _ABSENT:
        return a
    if a is _ABSENT:
        return b
    pair = {a, b}
    if _UNPROVEN in pair:
        return _UNPROVEN
    if None in pair:
        return None
    if Layout.UNFOLLOWED in pair:
        return Layout.UNFOLLOWED
    if pair == {Layout.POOLED, Layout.CL2}:
        return Layout.CL2
    if pair <= {Layout.PER_POSITION, Layout.KEEP, *_CHANNELS_LAST} and len(pair & set(_CHANNELS_LAST)) <= 1:
        return Layout.KEEP
    return None


def _torch_layout_helper(rw, call) -> Optional[str]:
    """The helper that builds torch layer `call` (`nn.Conv2d(...)`) with the same arguments for torch's layout
    (`Conv2dNCHW`), when there is one and the arguments name nothing of torch (kept as written, they mean the same
    there); else None."""
    layer = _layer_kind(rw, call)
    helper = VALUES.get(layer, ("",))[0] if layer is not None else ""
    if not helper.endswith("NCHW") or helper not in HELPER_CODE or any(a.star for a in call.args):
        return None
    if any((rw.qualified_name(n) or "").startswith("torch") for a in call.args for n in find(a.value, (cst.Name, cst.Attribute))):
        return None
    return helper


def _project_builders(rw) -> frozenset:
    """Names this file imports from other project files that build channels-last layers (directory runs)."""
    return rw.project_layout_builders or frozenset()


def _list_elements(scope: cst.FunctionDef, name: str) -> Optional[list]:
    """The modules put into list `name` in `scope`: by `name = [...]`, `name.append(m)`, `name += [...]`,
    `name.extend([...])`; None when `name` is used in any other way than these and `nn.Sequential(*name)`."""
    found: list = []
    seen: list = []  # the Name nodes these forms account for
    ok = [True]

    def add(items) -> None:
        if not isinstance(items, (cst.List, cst.Tuple)) or any(isinstance(el, cst.StarredElement) for el in items.elements):
            ok[0] = False
            return
        found.extend(el.value for el in items.elements)

    class _Uses(cst.CSTVisitor):
        names: list = []

        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name:
                _Uses.names.append(node)

        def visit_Assign(self, node: cst.Assign) -> None:
            if any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                seen.extend(t.target for t in node.targets if isinstance(t.target, cst.Name) and t.target.value == name)
                add(node.value)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if isinstance(node.target, cst.Name) and node.target.value == name:
                seen.append(node.target)
                add(node.value)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.target, cst.Name) and node.target.value == name and isinstance(node.operator, cst.AddAssign):
                seen.append(node.target)
                add(node.value)

        def visit_Call(self, node: cst.Call) -> None:
            func = node.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == name \
                    and func.attr.value in ("append", "extend") and len(node.args) == 1 and not node.args[0].keyword \
                    and not node.args[0].star:
                seen.append(func.value)
                if func.attr.value == "append":
                    found.append(node.args[0].value)
                else:
                    add(node.args[0].value)
            callee = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
            if callee == "Sequential":
                seen.extend(a.value for a in node.args if a.star == "*" and isinstance(a.value, cst.Name) and a.value.value == name)

    uses = _Uses()
    _Uses.names = []
    scope.body.visit(uses)
    if not ok[0] or {id(n) for n in _Uses.names} != {id(n) for n in seen}:
        return None
    return found


def _returned(function: cst.FunctionDef) -> list:
    """The values of the `return` statements of a function (not of functions or classes inside it)."""
    found: list = []

    class _Returns(cst.CSTVisitor):
        def visit_Return(self, node: cst.Return) -> None:
            found.append(node.value)

        def visit_FunctionDef(self, node) -> bool:
            return node is function

        def visit_ClassDef(self, node) -> bool:
            return False

        def visit_Lambda(self, node) -> bool:
            return False

    function.visit(_Returns())
    return found


def _walk_nodes(node: cst.CSTNode) -> list:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found


_MISSING = object()  # an argument a call leaves out
_RESHAPE = "reshape_channels_last"  # the `rebuild` entry of `x.reshape(n, c, length)` of a (N, H, W, C) map
TORCH_LAYOUT_MODULE = '''
def torch_layout_module(module, *classes):
    """`module`, an instance of one of `classes` (each takes a channels-last (N, ..., C) map and gives one), made to
    take and give PyTorch's batched channels-first (N, C, ...) data: channels moved last around its call. Its parameters
    stay where they are (the instance is kept: weights load by the same names). Another class raises (its layout
    in MLX is not known)."""
    base = type(module)
    if base not in classes:
        raise NotImplementedError(f"{base.__name__}: the converted model was followed for "
                                  f"{', '.join(c.__name__ for c in classes)} here; another class is not known to "
                                  "take and give channels-last data")

    def __call__(self, x):
        return mx.moveaxis(base.__call__(self, mx.moveaxis(x, 1, -1)), -1, 1)

    module.__class__ = type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__})
    return module
'''
RESHAPE_CHANNELS_LAST = '''
def reshape_channels_last(x, n, c, length):
    """PyTorch's reshape of an (N, C, H, W) map to (n, c, length), on its channels-last form x (N, H, W, C): the
    channels-last (N, H*W, C) when (n, c, length) is (N, C, H*W) (-1 allowed once); other shapes mix channels
    with positions differently in the two layouts, and raise."""
    shape = (x.shape[0], x.shape[-1], x.size // (x.shape[0] * x.shape[-1]))
    given = (n, c, length)
    if given.count(-1) > 1 or any(g not in (-1, s) for g, s in zip(given, shape)):
        raise NotImplementedError(f"reshape of a channels-last {tuple(x.shape)} map to {given}: only (N, C, H*W) is translated")
    return x.reshape(shape[0], shape[2], shape[1])
'''


def _argument(call: cst.Call, name: str, positional: list):
    """The expression `call` passes for the parameter `name` (`positional`: the positional parameters in order),
    _MISSING when it passes none, None when *args / **kwargs may carry it."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    index = positional.index(name) if name in positional else None
    plain = [a for a in call.args if a.keyword is None and a.star != "**"]
    for i, arg in enumerate(plain):
        if arg.star == "*":
            if index is not None:
                return None  # at or before the parameter's position
            continue
        if i == index:
            return arg.value
    return None if any(a.star == "**" for a in call.args) else _MISSING


def _calls_in(node) -> list:
    found: list = []

    class _Calls(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(_Calls())
    return found


class _ModuleCalls(cst.CSTVisitor):
    """One walk of the module for the calls the layout analysis looks up.

    `constructions`: class name -> [(call, enclosing FunctionDef or None, name of the enclosing class or None)]
    for every `Cls(...)` of a module-level class; `function_calls`: module-level function name -> [(call,
    FunctionDefs around it)]; `bound`: (name, class name) for each `name = Cls(...)` / `name: T = Cls(...)`;
    `method_calls`: (module-level class, method) -> [(`self.method(...)` call, FunctionDef around it)];
    `local_calls`: [(call, FunctionDef around it)] of the other calls of a bare name inside functions;
    `name_refs` / `attr_refs` / `attr_stores`: how often a name, an attribute `.x` and a store to `.x` occur;
    `value_refs`: class name -> its uses other than a call or in an annotation."""

    def __init__(self, module: cst.Module, classes: set, functions: set) -> None:
        self.classes, self.function_names = classes, functions
        self.constructions: dict = {}
        self.function_calls: dict = {}
        self.method_calls: dict = {}
        self.local_calls: list = []
        self.name_refs: dict = {}
        self.attr_refs: dict = {}
        self.attr_stores: dict = {}
        self.value_refs: dict = {}
        self.bound: list = []
        self.functions: list = []
        self.class_names: list = []
        self._called: set = set()  # id(Name) of call functions
        self._annotations = 0
        module.visit(self)

    def visit_Annotation(self, node) -> None:
        self._annotations += 1

    def leave_Annotation(self, node) -> None:
        self._annotations -= 1

    def visit_Name(self, node) -> None:
        self.name_refs[node.value] = self.name_refs.get(node.value, 0) + 1
        if node.value in self.classes and id(node) not in self._called and not self._annotations:
            self.value_refs[node.value] = self.value_refs.get(node.value, 0) + 1

    def visit_Attribute(self, node) -> None:
        self.attr_refs[node.attr.value] = self.attr_refs.get(node.attr.value, 0) + 1

    def visit_AssignTarget(self, node) -> None:
        for target in find(node.target, cst.Attribute):
            self.attr_stores[target.attr.value] = self.attr_stores.get(target.attr.value, 0) + 1

    def visit_AugAssign(self, node) -> None:
        self.visit_AssignTarget(node)

    def visit_FunctionDef(self, node) -> None:
        self.functions.append(node)

    def leave_FunctionDef(self, node) -> None:
        self.functions.pop()

    def visit_ClassDef(self, node) -> None:
        self.class_names.append(node.name.value)
        self._called.add(id(node.name))  # the class's own name: not a use as a value

    def leave_ClassDef(self, node) -> None:
        self.class_names.pop()

    def visit_Call(self, node) -> None:
        func = node.func
        if is_self_attribute(func) and self.class_names and self.functions:
            self.method_calls.setdefault((self.class_names[0], func.attr.value), []).append((node, self.functions[-1]))
        if not isinstance(func, cst.Name):
            return
        self._called.add(id(func))
        name = node.func.value
        if name not in self.classes and name not in self.function_names and self.functions:
            self.local_calls.append((node, self.functions[-1]))
        if name in self.classes:
            self.constructions.setdefault(name, []).append(
                (node, self.functions[-1] if self.functions else None, self.class_names[-1] if self.class_names else None))
        if name in self.function_names:
            self.function_calls.setdefault(name, []).append((node, list(self.functions)))

    def visit_Assign(self, node) -> None:
        value = node.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self.classes:
            self.bound.extend((t.target.value, value.func.value) for t in node.targets if isinstance(t.target, cst.Name))

    def visit_AnnAssign(self, node) -> None:
        self.visit_AssignTarget(node)  # `self.x: T = v` stores x too
        value = node.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self.classes \
                and isinstance(node.target, cst.Name):
            self.bound.append((node.target.value, value.func.value))


def _is_mx_call(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and is_name(call.func.value, sentinel("mx"))


def _receiver(original: cst.Call, updated: cst.Call) -> Optional[cst.BaseExpression]:
    """The (converted) tensor a method was called on: `x` of `x.flatten(2)` or of its MLX form `mx.flatten(x, ...)`."""
    func = updated.func
    mlx_function = isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == sentinel("mx")
    if mlx_function:
        return updated.args[0].value if updated.args and updated.args[0].keyword is None and not updated.args[0].star else None
    method = original.func.attr.value if isinstance(original.func, cst.Attribute) else None
    if isinstance(func, cst.Attribute) and func.attr.value == method and method is not None:
        return func.value  # left as a method call (e.g. flagged by the table)
    return None


def _is_one(node) -> bool:
    """An output size of 1, (1, 1) or [1, 1]: global pooling."""
    if isinstance(node, (cst.Tuple, cst.List)):
        return len(node.elements) == 2 and all(_int(el.value) == 1 for el in node.elements)
    return _int(node) == 1


def _global_pool(call: cst.Call) -> bool:
    size = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "output_size"), None)
    return size is not None and _is_one(size)


def _is_transpose(node) -> bool:
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "transpose"
            and isinstance(node.func.value, cst.Name) and node.func.value.value in ("mx", sentinel("mx"))
            and len(node.args) == 2)


def _without_transposes(call):
    """`mx.transpose(f(mx.transpose(x, to_cl), ...), to_cf)` (the NCHW form of a rule) -> `f(x, ...)`.
    Anything else (the rule flagged the call and left it as written) is returned unchanged."""
    if not _is_transpose(call):
        return call
    inner = call.args[0].value
    if not (isinstance(inner, cst.Call) and inner.args and _is_transpose(inner.args[0].value)):
        return call
    first = inner.args[0]
    return inner.with_changes(args=[first.with_changes(value=first.value.args[0].value), *inner.args[1:]],
                              lpar=call.lpar, rpar=call.rpar)


class _Rehearsal:
    """The `LayoutHost` of a method followed ahead of the pass (`_analyse`): names resolve as in the pass and project
    facts are the file's; a flag only records that the method was not followed throughout (the pass flags it where
    it is, when it visits the method); nothing is written (no imports, no identities)."""

    def __init__(self, host: "LayoutHost") -> None:
        self._host = host
        self.flagged = False
        self.project_layout_builders = host.project_layout_builders

    def qualified_name(self, node) -> Optional[str]:
        return self._host.qualified_name(node)

    def flag(self, node, rule_id: str, kind: str, message: str, severity: str = "warning") -> None:
        self.flagged = True

    def flags(self, since: int = 0) -> tuple:
        return ()  # no statement of a rehearsal is rewritten: none has findings to weigh

    def need_import(self, *roots: str) -> None:
        pass

    def mark_identity(self, node) -> None:
        pass


class _Statements(cst.CSTVisitor):
    """Feeds the statements of a forward to the layout analysis, as the rewriter's pass would."""

    def __init__(self, transform: "NnLayoutTransform", rw: _Rehearsal) -> None:
        self.transform, self.rw = transform, rw

    def visit_SimpleStatementLine(self, node) -> None:
        self.transform.visit_SimpleStatementLine(self.rw, node)

    def visit_If(self, node) -> None:
        self.transform.enter_if(self.rw, node)

    def visit_Else(self, node) -> None:
        self.transform.enter_else(self.rw, node)

    def leave_If(self, node) -> None:
        self.transform.exit_if(self.rw, node)

    def visit_For(self, node) -> None:
        self.transform.enter_loop(self.rw, node)

    def leave_For(self, node) -> None:
        self.transform.exit_loop(self.rw, node)

    visit_While, leave_While = visit_For, leave_For

    def visit_Try(self, node) -> None:
        self.transform._flag_compound(self.rw, node)

    visit_Match = visit_Try

    def visit_FunctionDef(self, node) -> bool:
        self.rw.flag(node, RULE, "needs-review", "a nested function is not followed ahead of the pass")
        return False

    visit_ClassDef = visit_Lambda = visit_FunctionDef



def _transpose(value: cst.BaseExpression, perm: str) -> cst.Call:
    return cst.Call(func=cst.parse_expression(f"{sentinel('mx')}.transpose"),
                    args=[cst.Arg(value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                          cst.Arg(cst.parse_expression(perm))])


class _SelfStores(cst.CSTVisitor):
    """The `self.<attr>` stores in a class's methods: `values` attr -> [(method, value, or None when it is not a
    plain `self.attr = value`)], `count` attr -> how many."""

    def __init__(self, cls: cst.ClassDef) -> None:
        self.values: dict = {}
        self.count: dict = {}
        for method in cls.body.body:
            if isinstance(method, cst.FunctionDef):
                self.method = method
                method.body.visit(self)

    def visit_Assign(self, node) -> None:
        single = len(node.targets) == 1
        for t in node.targets:
            for target in ([t.target] if isinstance(t.target, cst.Attribute) else
                           [e.value for e in t.target.elements] if isinstance(t.target, (cst.Tuple, cst.List)) else []):
                if is_self_attribute(target):
                    plain = single and target is t.target
                    self.values.setdefault(target.attr.value, []).append((self.method, node.value if plain else None))

    def visit_AssignTarget(self, node) -> None:
        for target in ([node.target] if isinstance(node.target, cst.Attribute) else
                       [e.value for e in node.target.elements] if isinstance(node.target, (cst.Tuple, cst.List)) else []):
            if isinstance(target, cst.Attribute):
                self.count[target.attr.value] = self.count.get(target.attr.value, 0) + 1

    def visit_AnnAssign(self, node) -> None:  # `self.x: T = v`: counted, not followed
        if is_self_attribute(node.target):
            self.count[node.target.attr.value] = self.count.get(node.target.attr.value, 0) + 1
            self.values.setdefault(node.target.attr.value, []).append((self.method, None))


class _Bindings(cst.CSTVisitor):
    """name -> the values bound to it in one scope (None for a binding that is not `name = value`)."""

    def __init__(self) -> None:
        self.values: dict = {}

    def bind(self, target, value=None) -> None:
        if isinstance(target, cst.Name):
            self.values.setdefault(target.value, []).append(value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self.bind(el.value)
        elif isinstance(target, cst.StarredElement):
            self.bind(target.value)

    def visit_Assign(self, node) -> None:
        for t in node.targets:
            self.bind(t.target, node.value if len(node.targets) == 1 else None)

    def visit_AnnAssign(self, node) -> None:
        self.bind(node.target, node.value)

    def visit_AugAssign(self, node) -> None:
        self.bind(node.target)

    def visit_NamedExpr(self, node) -> None:
        self.bind(node.target)

    def visit_For(self, node) -> None:
        self.bind(node.target)

    def visit_WithItem(self, node) -> None:
        if node.asname is not None:
            self.bind(node.asname.name)

    def visit_ExceptHandler(self, node) -> None:
        if node.name is not None:
            self.bind(node.name.name)

    def visit_Del(self, node) -> None:
        self.bind(node.target)

    def visit_ImportAlias(self, node) -> None:
        name = node.asname.name if node.asname else node.name
        self.bind(name if isinstance(name, cst.Name) else cst.Name(cst.helpers.get_full_name_for_node(name).split(".")[0]))

    def visit_Global(self, node) -> None:
        for item in node.names:
            self.bind(item.name, "global")

    def visit_Nonlocal(self, node) -> None:
        for item in node.names:
            self.bind(item.name, "global")

    def visit_FunctionDef(self, node) -> bool:
        self.bind(node.name)
        return False

    def visit_ClassDef(self, node) -> bool:
        self.bind(node.name)
        return False

    def visit_Lambda(self, node) -> bool:
        return False

    def visit_ListComp(self, node) -> bool:
        return False

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp


def _functools_partial_names(module: cst.Module, bindings: dict) -> frozenset:
    """The module-level names bound once, to functools.partial (`from functools import partial [as p]`), and
    `functools.<name>` for `import functools [as <name>]`."""
    found = set()
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.ImportFrom) and not small.relative and isinstance(small.module, cst.Name) \
                    and small.module.value == "functools" and not isinstance(small.names, cst.ImportStar):
                found.update((a.asname.name.value if a.asname else "partial") for a in small.names
                             if isinstance(a.name, cst.Name) and a.name.value == "partial"
                             and (a.asname is None or isinstance(a.asname.name, cst.Name)))
            elif isinstance(small, cst.Import):
                found.update(f"functools.{a.asname.name.value if a.asname else 'functools'}" for a in small.names
                             if isinstance(a.name, cst.Name) and a.name.value == "functools"
                             and (a.asname is None or isinstance(a.asname.name, cst.Name)))
    return frozenset(n for n in found if len(bindings.get(n.removeprefix("functools."), [])) == 1)


def _bindings(node) -> dict:
    collect = _Bindings()
    if isinstance(node, cst.FunctionDef):
        params = node.params
        for i, p in enumerate([*params.posonly_params, *params.params, *params.kwonly_params]):
            collect.values.setdefault(p.name.value, []).append(("param", i))
        for p in (params.star_arg, params.star_kwarg):
            if isinstance(p, cst.Param):
                collect.values.setdefault(p.name.value, []).append(None)
    for stmt in node.body.body if isinstance(node, cst.FunctionDef) else node.body:
        stmt.visit(collect)
    return collect.values


class _Instances:
    """Which names (and `self.<attr>`s) provably hold an instance of a channels-last class of this module.

    A name is proven when it is bound once in its scope, by `name = Cls(...)`; a parameter of a
    module-level function when every call of that function in the module passes a proven instance
    in its place and the function never rebinds it. Anything bound from `Cls(...)` otherwise is
    an instance that cannot be proven (the call site is flagged)."""

    def __init__(self, module: cst.Module, classes: dict, walk: "_ModuleCalls") -> None:
        self.classes = classes  # class name -> (permutation to channels-last, number of inputs)
        self.module = _bindings(module)
        self.functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
        self.scopes: list = []  # the FunctionDefs the pass is in
        self.params: dict = {}  # (function name, parameter name) -> (proven, class) or None
        self.attrs: dict = {}   # id(ClassDef) -> {attr: (proven, class)}
        self.bound: dict = {}   # id(FunctionDef) -> its bindings, computed when first needed
        self.candidates: set = {p.name.value for f in self.functions.values()
                                for p in [*f.params.posonly_params, *f.params.params, *f.params.kwonly_params]}
        self.module_calls = walk.function_calls
        self.candidates.update(name for name, cls in walk.bound if cls in classes)  # names bound to `Cls(...)`

    def _bindings_of(self, fn: cst.FunctionDef) -> dict:
        if id(fn) not in self.bound:
            self.bound[id(fn)] = _bindings(fn)
        return self.bound[id(fn)]

    def enter(self, node: cst.FunctionDef) -> None:
        self.scopes.append(node)

    def leave(self) -> None:
        self.scopes.pop()

    def callee(self, func, class_stack) -> Optional[tuple]:
        if isinstance(func, cst.Name):
            # only a name bound to `Cls(...)` somewhere, or a parameter of a module-level function, can be one
            return self.resolve(func.value, self.scopes) if func.value in self.candidates else None
        if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
                and class_stack and class_stack[-1][1] is None):
            node = class_stack[-1][0]
            if id(node) not in self.attrs:
                self.attrs[id(node)] = self._attributes(node)
            return self.attrs[id(node)].get(func.attr.value)
        return None

    def resolve(self, name: str, scopes: list) -> Optional[tuple]:
        for fn in reversed(scopes):
            bound = self._bindings_of(fn)
            if name in bound:
                if "global" in bound[name]:
                    break
                param = [v for v in bound[name] if isinstance(v, tuple)]
                if param and self.functions.get(fn.name.value) is fn:
                    found = self._param(fn, name)
                    return None if found is None else (found[0] and len(bound[name]) == 1, found[1])
                return self._judge(bound[name])
        return self._judge(self.module.get(name, []))

    def _judge(self, values: list) -> Optional[tuple]:
        classes = [v.func.value for v in values if isinstance(v, cst.Call) and isinstance(v.func, cst.Name)
                   and v.func.value in self.classes]
        if not classes:
            return None
        return (len(values) == 1, classes[0])

    def _param(self, fn: cst.FunctionDef, name: str) -> Optional[tuple]:
        key = (fn.name.value, name)
        if key not in self.params:
            self.params[key] = None  # guards recursion
            positional = [p.name.value for p in [*fn.params.posonly_params, *fn.params.params]]
            index = positional.index(name) if name in positional else None
            passed = []
            for call, scopes in self.module_calls.get(fn.name.value, []):
                arg = next((a.value for a in call.args if a.keyword and a.keyword.value == name), None)
                plain = [a for a in call.args if not a.keyword and not a.star]
                if arg is None and index is not None and index < len(plain) and not any(a.star for a in call.args):
                    arg = plain[index].value
                passed.append(self.resolve(arg.value, scopes) if isinstance(arg, cst.Name) else None)
            found = [p for p in passed if p is not None]
            if found:
                proven = len(found) == len(passed) and all(p[0] and p[1] == found[0][1] for p in found)
                self.params[key] = (proven, found[0][1])
        return self.params[key]

    def _attributes(self, node: cst.ClassDef) -> dict:
        values: dict = {}

        class _Attrs(cst.CSTVisitor):
            def visit_Assign(self, n) -> None:
                for t in n.targets:
                    for target in (t.target.elements if isinstance(t.target, (cst.Tuple, cst.List)) else [t.target]):
                        target = getattr(target, "value", target) if not isinstance(target, cst.Attribute) else target
                        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
                            values.setdefault(target.attr.value, []).append(n.value if len(n.targets) == 1 else None)

            def visit_AugAssign(self, n) -> None:
                self.visit_Assign(cst.Assign(targets=[cst.AssignTarget(n.target)], value=cst.Name("_")))

        node.visit(_Attrs())
        return {attr: found for attr, v in values.items() if (found := self._judge(v)) is not None}
