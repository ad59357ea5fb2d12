"""Attributes of torch layers that the MLX layer they became lacks or stores differently.

Whisper reads `self.conv1.stride[0]`: torch's nn.Conv1d stores stride as a tuple `(s,)`, MLX's as the
int it was given, so the read raises TypeError after conversion; `self.fc.in_features` raises
AttributeError (MLX's Linear keeps only its weight); `conv.weight.shape[1]` is in_channels/groups in
torch (OIHW) but the kernel height in MLX (OHWI): a silently different number. This module reads the
converted output: where the receiver is `self.x` and every store of `.x` in the file constructs the
same MLX layer, a read of an attribute in LAYER_ATTRIBUTES is rewritten where the table has an exact
MLX expression (checked against both libraries by tests/test_layer_attributes.py), and flagged
otherwise (rule id `torch-layer-attribute`, with what to write).
"""
from __future__ import annotations

import ast
import re
from typing import Optional

RULE_ID = "torch-layer-attribute"

_CONV = ("Conv1d", "Conv2d", "Conv3d")
_CONV_T = ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
# spatial dimensions of each conv layer
SPATIAL = {name: int(name[-2]) for name in _CONV + _CONV_T}
# MLX constructor parameters in order (positional index of an argument), for the conv layers
CONV_PARAMS = {
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"),
    "Conv3d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "bias"),
    **{name: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "output_padding", "bias")
       for name in _CONV_T},
}
# Conv attributes MLX stores exactly as given (torch stores a tuple of the spatial size): per layer.
# The read is exact when the constructor passed an int literal or nothing (MLX's default is the int 1 / 0).
RAW_INT = {
    "Conv1d": ("stride", "padding", "dilation"),
    "Conv2d": ("dilation",), "Conv3d": ("dilation",),
    "ConvTranspose1d": ("stride", "padding", "dilation", "output_padding"),
    "ConvTranspose2d": ("dilation",), "ConvTranspose3d": ("dilation",),
}

_LAYOUT = ("MLX conv weights are (out, *kernel, in/groups) where torch's are (out, in/groups, *kernel) "
           "(transposed: (in, out/groups, *kernel)): index the MLX shape accordingly")

# MLX class -> torch attribute -> (exact MLX expression with `{x}` for the layer, or None: flagged) and why.
LAYER_ATTRIBUTES: dict = {}
for _name in _CONV + _CONV_T:
    _n = SPATIAL[_name]
    LAYER_ATTRIBUTES[_name] = {
        "out_channels": ("{x}.weight.shape[0]", "MLX conv layers keep no out_channels"),
        "kernel_size": ("{x}.weight.shape[1:-1]", "MLX conv layers keep no kernel_size"),
        "in_channels": (("{x}.weight.shape[-1] * {x}.groups" if _name in ("Conv1d", "Conv2d") else
                         "{x}.weight.shape[-1]" if _name in _CONV_T else None),
                        "MLX conv layers keep no in_channels" + (
                            "" if _name != "Conv3d" else " (nor groups): `x.weight.shape[-1]` times the groups")),
        "padding_mode": (None, "MLX conv layers keep no padding_mode (they pad with zeros)"),
        "groups": (None if _name not in ("Conv1d", "Conv2d") else "{x}.groups",
                   "this MLX conv layer has no groups"),
    }
    if _name in _CONV_T:
        LAYER_ATTRIBUTES[_name]["in_channels"] = ("{x}.weight.shape[-1]", "MLX transposed convs keep no in_channels")
        LAYER_ATTRIBUTES[_name]["groups"] = (None, "MLX transposed convs have no groups")
    else:
        LAYER_ATTRIBUTES[_name]["output_padding"] = (None, "MLX convs have no output_padding")
LAYER_ATTRIBUTES["Linear"] = {
    "in_features": ("{x}.weight.shape[1]", "MLX's Linear keeps no in_features"),
    "out_features": ("{x}.weight.shape[0]", "MLX's Linear keeps no out_features"),
}
LAYER_ATTRIBUTES["Embedding"] = {
    "num_embeddings": ("{x}.weight.shape[0]", "MLX's Embedding keeps no num_embeddings"),
    "embedding_dim": ("{x}.weight.shape[1]", "MLX's Embedding keeps no embedding_dim"),
    "padding_idx": (None, "MLX's Embedding has no padding_idx"),
}
LAYER_ATTRIBUTES["BatchNorm"] = {
    "affine": ('("weight" in {x})', "MLX's BatchNorm keeps no affine flag (it has a weight when affine)"),
}
LAYER_ATTRIBUTES["LayerNorm"] = {
    "normalized_shape": ("({x}.dims,)", "MLX's LayerNorm keeps the normalized size as `dims`"),
    "elementwise_affine": ('("weight" in {x})', "MLX's LayerNorm keeps no elementwise_affine flag"),
}
LAYER_ATTRIBUTES["GroupNorm"] = {
    "num_channels": ("{x}.dims", "MLX's GroupNorm keeps the channel count as `dims`"),
    "affine": ('("weight" in {x})', "MLX's GroupNorm keeps no affine flag (it has a weight when affine)"),
}
LAYER_ATTRIBUTES["Dropout"] = {
    "p": (None, "MLX's Dropout keeps no p (only a private 1 - p): keep the probability in an attribute of your own"
                " (a layer built in view, `self.x = nn.Dropout(...)` in the class, becomes TorchDropout, which does)"),
    "inplace": (None, "MLX's Dropout has no inplace"),
}
for _name in ("MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"):
    LAYER_ATTRIBUTES[_name] = {
        a: (None, f"MLX's {_name} keeps no public {a}: keep the value in an attribute of your own")
        for a in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad", "return_indices")}
LAYER_ATTRIBUTES["MultiHeadAttention"] = {
    a: (None, f"MLX's MultiHeadAttention keeps no {a}: keep the value in an attribute of your own")
    for a in ("embed_dim", "head_dim", "kdim", "vdim", "batch_first", "dropout")}
for _name in ("RNN", "GRU", "LSTM"):
    LAYER_ATTRIBUTES[_name] = {
        a: (None, f"MLX's {_name} keeps no {a}: keep the value in an attribute of your own")
        for a in ("input_size", "num_layers", "batch_first", "dropout", "bidirectional")}
del _name, _n
# Reads narrowed only by isinstance(m, <MLX layer>) may meet the converter's torch-compatible subclasses of
# that layer (transforms/module/layer_bases.py: TorchLayerNorm keeps a normalized_shape of several axes
# where `dims` is only the last): these entries are flagged there, rewritten only on a layer built in view.
NARROWED_UNSAFE = frozenset({("LayerNorm", "normalized_shape")})
# Entries exact only when the layer's constructor passed that argument (keyword, positional index) as an
# int literal: the converter may leave `nn.LayerNorm((4, 6))` / `nn.LayerNorm([c])`, whose dims is no int.
INT_ARGUMENT = {("LayerNorm", "normalized_shape"): ("dims", 0)}

# Attributes MLX's layer does not keep but a subclass written into the file does (KEEPING_SOURCE): where every
# constructor of the layer read (or set) is in view, `self.x = nn.Dropout(...)` in that class, those constructors build
# the subclass and the read stays as written. MLX class -> (subclass name, the attributes it keeps).
KEEPING = {"Dropout": ("TorchDropout", ("p",))}
KEEPING_SOURCE = {"Dropout": '''
# mlx helper generated by torch2mlx (already MLX; later conversions leave it alone)
class TorchDropout({nn}.Dropout):
    """MLX's Dropout keeping PyTorch's `p` as given (MLX keeps only 1 - p, privately as `_p_1`): a plain attribute, no
    parameter, so parameters() and weight loading are nn.Dropout's. Setting p changes the probability, as in PyTorch
    (MLX's range: 0 <= p < 1)."""

    def __init__(self, p=0.5):
        super().__init__(p)
        self.p = p

    def __setattr__(self, name, value):
        if name == "p":
            if not 0 <= value < 1:
                raise ValueError(f"The dropout probability {{value}} is not in [0, 1)")
            super().__setattr__("_p_1", 1 - value)
        super().__setattr__(name, value)
'''}

_ALL_ATTRS = frozenset(a for table in LAYER_ATTRIBUTES.values() for a in table) | {"weight", "bias"} | {
    a for names in RAW_INT.values() for a in names}
_IMPORTS_MLX_NN = re.compile(r"^[ \t]*(?:import[ \t]+mlx\.nn\b|from[ \t]+mlx(?:\.nn)?[ \t]+import\b)", re.MULTILINE)
_QUICK = re.compile(r"\.(?:" + "|".join(sorted(_ALL_ATTRS)) + r")\b")


_walked: list = [(None, [])]  # [(the module last walked, its nodes)]: the audit reads one tree a dozen times


def _nodes(tree: ast.Module) -> list:
    """`ast.walk(tree)` as a list, made once per module (the audit never changes the tree: it edits the text).
    One tuple, read and replaced whole, so that conversions in threads never mix two modules' nodes."""
    walked_tree, nodes = _walked[0]
    if walked_tree is not tree:
        nodes = list(ast.walk(tree))
        _walked[0] = (tree, nodes)
    return nodes


def audit(code: str, original: str = "") -> tuple[str, list]:
    """The output with exact reads rewritten, and (statement, column, why) for each read left to flag
    (the statements of the output as parsed here: a rewrite changes no line).

    An input that already imports mlx.nn (converted code converted again, or MLX code of its own) is
    left alone: there `conv.stride` and `conv.weight.shape[1]` are MLX's, meant as written."""
    if _IMPORTS_MLX_NN.search(original) or "mlx.nn" not in code and "from mlx import nn" not in code or not _QUICK.search(code):
        return code, []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, []
    nn_names = _mlx_nn_names(tree)
    if not nn_names:
        return code, []
    nn_names = _with_conv_helpers(tree, nn_names)
    layers = _known_layers(tree, nn_names)
    parents = {child: node for node in _nodes(tree) for child in ast.iter_child_nodes(node)}
    reads: dict = {}  # id(attribute node) -> (node, MLX layer, its constructor calls or None: not known)
    for cls in (n for n in _nodes(tree) if isinstance(n, ast.ClassDef) and n.name in layers):
        for fn in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            if not fn.args.args:
                continue
            self_name = fn.args.args[0].arg
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                        and isinstance(node.value.value, ast.Name) and node.value.value.id == self_name \
                        and isinstance(node.ctx, ast.Load) and node.value.attr in layers[cls.name]:
                    reads[id(node)] = (node, *layers[cls.name][node.value.attr])
    for node, layer in _narrowed_reads(tree, nn_names):
        reads.setdefault(id(node), (node, layer, None))
    edits, flags = [], []
    edits += _none_checks(tree, code)
    kept, keeping = _keeping(tree, nn_names, layers, reads)
    for layer, calls in kept.items():
        edits += [(c.func.lineno, c.func.col_offset, c.func.end_col_offset, keeping[layer][2]) for c in calls]
    unknown = _unknown_layer_reads(tree, code, layers, reads, parents)
    helper = _helper_code(tree, nn_names) if unknown else None
    if helper is not None:
        edits += unknown
    flags += _narrowed_stores(tree, nn_names, parents)
    for node, layer, calls in reads.values():
        if layer in kept and calls is not None and node.attr in KEEPING[layer][1]:
            continue  # built as the subclass that keeps it: read as written
        found = _read(node, parents, layer, calls, code)
        if found is None:
            continue
        target, replacement, why = found
        if replacement is not None and target.lineno == target.end_lineno:
            edits.append((target.lineno, target.col_offset, target.end_col_offset, replacement))
        else:  # no exact expression, or a read spread over lines (rewritten in place only on one)
            why = why or f"write `{replacement}` (the MLX layer keeps no such attribute)"
            stmt = target
            while not isinstance(stmt, ast.stmt):
                stmt = parents[stmt]
            flags.append((stmt, target.col_offset, why))
    if edits:
        lines = code.splitlines(keepends=True)
        for line, start, end, text in sorted(edits, reverse=True):
            raw = lines[line - 1].encode()
            lines[line - 1] = (raw[:start] + text.encode() + raw[end:]).decode()
        code = "".join(lines)
    if helper is not None and helper[1]:
        code, flags = _insert_helper(code, flags, *helper)
    for layer in kept:
        after, source, _ = keeping[layer]
        if source:
            code, flags = _insert_helper(code, flags, after, source)
    return code, flags


def _keeping(tree: ast.Module, nn_names: frozenset, layers: dict, reads: dict) -> tuple:
    """(MLX class -> constructor calls that build its KEEPING subclass, MLX class -> (line after which the subclass
    goes, its code, its name in the file)), for the classes whose subclass can be written."""
    kept = _kept_layers(tree, layers, reads)
    keeping = {layer: _keeping_code(tree, nn_names, layer) for layer in kept}
    return {layer: calls for layer, calls in kept.items() if keeping[layer] is not None}, keeping


def _narrowed_stores(tree: ast.Module, nn_names: frozenset, parents: dict) -> list:
    """Flags for `m.p = 0.0` under isinstance(m, nn.Dropout): an attribute MLX's layer never reads (a KEEPING one)."""
    flags = []
    for node, layer in _narrowed_reads(tree, nn_names, ast.Store):
        if node.attr in KEEPING.get(layer, ("", ()))[1]:
            stmt = node
            while not isinstance(stmt, ast.stmt):
                stmt = parents[stmt]
            flags.append((stmt, node.col_offset, f"setting `.{node.attr}` of an MLX {layer} changes nothing: "
                          f"{LAYER_ATTRIBUTES[layer][node.attr][1]}"))
    return flags


def _kept_layers(tree: ast.Module, layers: dict, reads: dict) -> dict:
    """MLX class -> the constructor calls to turn into its KEEPING subclass: those of each `self.x` (a layer built in
    view, every store in one class) whose KEEPING attribute the class reads or sets (`self.x.p`)."""
    kept: dict = {}
    for node, layer, calls in reads.values():
        if calls is not None and layer in KEEPING and node.attr in KEEPING[layer][1]:
            kept.setdefault(layer, {}).update((id(c), c) for c in calls)
    for cls in (n for n in _nodes(tree) if isinstance(n, ast.ClassDef) and n.name in layers):
        for fn in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.args.args):
            me = fn.args.args[0].arg
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                        and isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name) \
                        and node.value.value.id == me and node.value.attr in layers[cls.name]:
                    layer, calls = layers[cls.name][node.value.attr]
                    if layer in KEEPING and node.attr in KEEPING[layer][1]:
                        kept.setdefault(layer, {}).update((id(c), c) for c in calls)
    return {layer: [c for c in calls.values() if c.func.lineno == c.func.end_lineno] for layer, calls in kept.items()
            if all(c.func.lineno == c.func.end_lineno for c in calls.values())}


def _keeping_code(tree: ast.Module, nn_names: frozenset, layer: str):
    """(line after which the KEEPING subclass of `layer` goes, its code or '' where the file defines it already, its
    name in the file: a fresh one where the file uses the name for something else), or None where no plain mlx.nn
    alias is there."""
    name = KEEPING[layer][0]
    if any(isinstance(n, ast.ClassDef) and n.name == name and _is_keeping(n, layer) for n in tree.body):
        return 0, "", name
    plain = sorted(n for n in nn_names if "=" not in n)
    if not plain:
        return None
    used = _names_used(tree)
    fresh, n = name, 0
    while fresh in used:
        n += 1
        fresh = f"{name}_{n}"
    # a class's base is read when it is defined: after the import binding the alias (timm's files import mlx.nn
    # below a `try: from typing import Literal`), and the imports right after it
    after, seen = 0, False
    for stmt in tree.body:
        binds = isinstance(stmt, ast.Import) and any(a.name == "mlx.nn" and a.asname == plain[0] for a in stmt.names) \
            or isinstance(stmt, ast.ImportFrom) and stmt.module == "mlx" and stmt.level == 0 and any(
                a.name == "nn" and (a.asname or a.name) == plain[0] for a in stmt.names)
        if binds or seen and isinstance(stmt, (ast.Import, ast.ImportFrom)):
            after, seen = stmt.end_lineno, True
        elif seen:
            break
    source = KEEPING_SOURCE[layer].lstrip("\n").format(nn=plain[0]).replace(f"class {name}(", f"class {fresh}(")
    return after, source, fresh


def _is_keeping(node: ast.ClassDef, layer: str) -> bool:
    """The file's class of KEEPING's name is the subclass written here before (its docstring)."""
    doc = ast.get_docstring(node) or ""
    return doc.startswith(f"MLX's {layer} keeping PyTorch's")


def _names_used(tree: ast.Module) -> set:
    """Every name the module binds or reads (variables, functions, classes, imports, parameters)."""
    used = set()
    for node in _nodes(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            used.add(node.name)
        elif isinstance(node, ast.alias):
            used.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            used.add(node.arg)
    return used


# Reads of these on a layer of a class the file does not show (timm's `self.conv = create_conv2d(...)` is an MLX
# Conv2d or a class of timm's own) become torch_layer_attribute(layer, name): exact for either at run time.
UNKNOWN_CLASS_ATTRS = ("in_channels", "out_channels", "kernel_size", "in_features", "out_features",
                       "num_embeddings", "embedding_dim", "stride", "dilation")
# the RAW_INT entries the helper makes torch's tuple (not padding: a string torch keeps became numbers in MLX)
_HELPER_RAW = ("stride", "dilation")
HELPER = "torch_layer_attribute"


def _helper_source(nn: str) -> str:
    """The helper's code, from LAYER_ATTRIBUTES (`nn` is the file's name for mlx.nn)."""
    body = []
    for attr in UNKNOWN_CLASS_ATTRS:
        by_template: dict = {}
        for layer, table in LAYER_ATTRIBUTES.items():
            if attr in table:
                by_template.setdefault(table[attr][0], []).append(layer)
        for template, layers in by_template.items():
            classes = ", ".join(f"{nn}.{layer}" for layer in layers) + ("," if len(layers) == 1 else "")
            result = (f"return {template.format(x='layer')}" if template is not None else
                      f"raise AttributeError(\"{attr} of an MLX \" + type(layer).__name__ + \": "
                      f"{LAYER_ATTRIBUTES[layers[0]][attr][1]}\")")
            body.append(f"    if name == {attr!r} and isinstance(layer, ({classes})):\n        {result}")
    raw = []
    for attr in _HELPER_RAW:
        by_size: dict = {}
        for layer, names in RAW_INT.items():
            if attr in names:
                by_size.setdefault(SPATIAL[layer], []).append(layer)
        for n, layers in sorted(by_size.items()):
            classes = ", ".join(f"{nn}.{layer}" for layer in layers) + ("," if len(layers) == 1 else "")
            raw.append(f"    if name == {attr!r} and isinstance(layer, ({classes})):  # MLX keeps it as given\n"
                       f"        value = layer.{attr}\n"
                       f"        return (value,){f' * {n}' if n > 1 else ''} if isinstance(value, int) else tuple(value)")
    return ("# mlx helper generated by torch2mlx (already MLX; later conversions leave it alone)\n"
            f"def {HELPER}(layer, name):\n"
            "    \"\"\"torch's `layer.<name>` where the layer may be an MLX layer that keeps no such attribute (read off\n"
            "    its weights) or a class of its own (the layer's own attribute).\"\"\"\n" + "\n".join(raw) +
            "\n    if hasattr(layer, name):\n        return getattr(layer, name)\n" + "\n".join(body) +
            "\n    return getattr(layer, name)\n")


def _none_checks(tree: ast.Module, code: str) -> list:
    """`R.bias is None` / `R.weight is not None`: a torch layer built without them holds None, an MLX layer
    has no such attribute (AttributeError): `getattr(R, "bias", None) is None`, exact for either. R is any
    receiver but a bare name `self` (a class's own attribute, set as it reads)."""
    edits = []
    for node in _nodes(tree):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Is, ast.IsNot))
                and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value is None):
            continue
        left = node.left
        # a read narrowed by isinstance (`reads`) is rewritten here too: the table has no entry for a bare .bias
        if not (isinstance(left, ast.Attribute) and left.attr in ("bias", "weight")
                and left.lineno == left.end_lineno and isinstance(left.value, (ast.Name, ast.Attribute))
                and _rooted(left.value) and not (isinstance(left.value, ast.Name) and left.value.id == "self")):
            continue
        receiver = ast.get_source_segment(code, left.value)
        edits.append((left.lineno, left.col_offset, left.end_col_offset, f'getattr({receiver}, "{left.attr}", None)'))
    return edits


def _rooted(node) -> bool:
    """An attribute chain ending in a name (`self.proj`, `embeds.proj`)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _unknown_layer_reads(tree: ast.Module, code: str, layers: dict, reads: dict, parents: dict) -> list:
    """Edits turning `self.a(.b)*.<attr>` (attr in UNKNOWN_CLASS_ATTRS) into the helper's call, where `self.a` is
    set in that class from an expression (a call of a function or class the file does not show, a conditional,
    an item of a container), not from a name or another attribute (`self.config = config`), and is no layer the
    table already knows."""
    edits = []
    for cls in (n for n in _nodes(tree) if isinstance(n, ast.ClassDef)):
        methods = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.args.args]
        built = set()
        for fn in methods:
            me = fn.args.args[0].arg
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and not isinstance(node.value, (ast.Name, ast.Attribute, ast.Constant)):
                    built.update(t.attr for t in node.targets if isinstance(t, ast.Attribute)
                                 and isinstance(t.value, ast.Name) and t.value.id == me)
        built -= set(layers.get(cls.name, {}))
        for fn in methods:
            me = fn.args.args[0].arg
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Attribute) and node.attr in UNKNOWN_CLASS_ATTRS
                        and isinstance(node.ctx, ast.Load) and id(node) not in reads and node.lineno == node.end_lineno):
                    continue
                call = parents.get(node)
                if isinstance(call, ast.Call) and call.func is node:
                    continue  # a method (a tensor's .stride()), not a layer attribute
                root = node.value
                while isinstance(root, ast.Attribute) and isinstance(root.value, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Attribute) and isinstance(root.value, ast.Name) and root.value.id == me \
                        and root.attr in built:
                    receiver = ast.get_source_segment(code, node.value)
                    edits.append((node.lineno, node.col_offset, node.end_col_offset,
                                  f'{HELPER}({receiver}, "{node.attr}")'))
    return edits


def _helper_code(tree: ast.Module, nn_names: frozenset):
    """(line after which the helper goes, its code, or '' when the file defines it already), or None where its
    name is taken by something else or no plain mlx.nn alias is there."""
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == HELPER]
    if defined:
        return 0, ""
    if any(isinstance(n, ast.Name) and n.id == HELPER or isinstance(n, (ast.FunctionDef, ast.ClassDef)) and
           n.name == HELPER or isinstance(n, ast.alias) and (n.asname or n.name) == HELPER for n in _nodes(tree)):
        return None
    plain = sorted(n for n in nn_names if "=" not in n)
    if not plain:
        return None
    after = 0
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or (
                isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
            after = stmt.end_lineno
        else:
            break
    return after, _helper_source(plain[0])


def _insert_helper(code: str, flags: list, after: int, source: str) -> tuple:
    """The helper written after line `after` (two blank lines around it); the flags' statements re-read from
    the new code (they moved down)."""
    lines = code.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = ["\n", "\n", *(line + "\n" for line in source.rstrip("\n").split("\n"))]
    block = [line.replace("\n", newline) for line in block]
    code = "".join(lines[:after] + block + lines[after:])
    if not flags:
        return code, flags
    shift = len(block)
    moved = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.stmt):
            moved[(node.lineno, node.col_offset, type(node))] = node
    return code, [(moved[(s.lineno + (shift if s.lineno > after else 0), s.col_offset, type(s))], col, why)
                  for s, col, why in flags]


def _narrowed_reads(tree: ast.Module, nn_names: frozenset, ctx=ast.Load):
    """(`R.attr` node, layer) for reads in the body of `if isinstance(R, <mlx.nn>.<Layer>):` (also one operand
    of an `and`), R a name or an attribute chain that the body never assigns: torch code reads a layer's
    attributes this way in its weight-initialisation loops (`for m in self.modules(): if isinstance(m, ...)`)."""
    for node in _nodes(tree):
        if not isinstance(node, ast.If):
            continue
        tests = node.test.values if isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And) \
            else [node.test]
        for test in tests:
            if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
                    and len(test.args) == 2 and not test.keywords):
                continue
            receiver, layer = test.args[0], _layer_call(ast.Call(test.args[1], [], []), nn_names)
            if layer is None or not isinstance(receiver, (ast.Name, ast.Attribute)):
                continue
            key = ast.dump(receiver, annotate_fields=False).replace("Load()", "")
            body = [sub for stmt in node.body for sub in ast.walk(stmt)]
            if any(isinstance(sub, (ast.Name, ast.Attribute)) and not isinstance(sub.ctx, ast.Load)
                   and ast.dump(sub, annotate_fields=False).replace("Store()", "").replace("Del()", "") == key
                   for sub in body):
                continue  # the body rebinds it
            for sub in body:
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ctx) and \
                        ast.dump(sub.value, annotate_fields=False).replace("Load()", "") == key:
                    yield sub, layer


def _read(node: ast.Attribute, parents: dict, layer: str, calls: list, code: str):
    """(node to replace or flag, replacement text or None, why) for a read `self.x.<attr>`, or None."""
    receiver = ast.get_source_segment(code, node.value)
    attr = node.attr
    parent = parents.get(node)
    if attr == "weight" and layer in SPATIAL:
        # `.weight.shape...`, `.weight.size(...)`, `.weight.data.shape...`
        up = parent
        if isinstance(up, ast.Attribute) and up.attr == "data":
            up = parents.get(up)
        if not (isinstance(up, ast.Attribute) and up.attr in ("shape", "size")):
            return None
        outer = parents.get(up)
        if up.attr == "shape":
            if isinstance(outer, ast.Subscript) and outer.value is up:
                if _int(outer.slice) == 0 and layer in _CONV:
                    return None  # the out channels in both layouts
            elif not (isinstance(outer, ast.Assign) and outer.value is up
                      and any(isinstance(t, (ast.Tuple, ast.List)) for t in outer.targets)):
                return None  # the whole shape (`mx.random.normal(conv.weight.shape)`) is the MLX weight's own
        return up, None, f"`{receiver}.weight.{up.attr}` of an MLX {layer}: {_LAYOUT}"
    if attr in RAW_INT.get(layer, ()):
        plain = calls is not None and all(_int_or_absent(call, layer, attr) for call in calls)
        n = SPATIAL[layer]
        if isinstance(parent, ast.Subscript) and parent.value is node:
            k = _int(parent.slice)
            if plain and k is not None and -n <= k < n:
                return parent, f"{receiver}.{attr}", ""
            return parent, None, (f"MLX's {layer} stores {attr} as it was given (an int here may be a tuple in "
                                  f"torch): read `{receiver}.{attr}` knowing what the constructor passed")
        if plain:
            return node, f"({receiver}.{attr},)" + (f" * {n}" if n > 1 else ""), ""
        return node, None, f"MLX's {layer} stores {attr} as it was given, where torch stores a tuple of {n}"
    entry = LAYER_ATTRIBUTES.get(layer, {}).get(attr)
    if entry is None:
        return None
    template, why = entry
    if template is not None and (layer, attr) in INT_ARGUMENT and calls is not None and not all(
            _int(_argument(call, *INT_ARGUMENT[layer, attr])) is not None for call in calls):
        return node, None, f"`.{attr}` of an MLX {layer} built from a value that may be no int: {why}"
    if template is not None and calls is None and (layer, attr) in NARROWED_UNSAFE:
        return node, None, (f"`.{attr}` of an MLX {layer} (or of a torch2mlx subclass keeping torch's "
                            f"attribute): {why}; `{template.format(x=receiver)}` for a plain MLX {layer}")
    if template is not None:
        text = template.format(x=receiver)
        if text == f"{receiver}.{attr}":
            return None
        return node, text, ""
    return node, None, f"`.{attr}` of an MLX {layer}: {why}"


def _int(node) -> Optional[int]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    return None


def _int_or_absent(call: ast.Call, layer: str, attr: str) -> bool:
    """The constructor passes `attr` as an int literal, or not at (MLX's default is an int)."""
    params = CONV_PARAMS[layer]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return False
    value = next((k.value for k in call.keywords if k.arg == attr), None)
    index = params.index(attr)
    if value is None and len(call.args) > index:
        value = call.args[index]
    return value is None or _int(value) is not None


def _argument(call: ast.Call, keyword: str, index: int):
    """The constructor's argument `keyword` (or at `index`), None if absent or not knowable."""
    if any(isinstance(a, ast.Starred) for a in call.args[:index + 1]) or any(k.arg is None for k in call.keywords):
        return None
    value = next((k.value for k in call.keywords if k.arg == keyword), None)
    return value if value is not None else call.args[index] if len(call.args) > index else None


def _mlx_nn_names(tree: ast.Module) -> frozenset:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.name == "mlx.nn" and a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "mlx" and node.level == 0:
            names.update(a.asname or a.name for a in node.names if a.name == "nn")
    # a name bound to anything else anywhere (a kept torch layer's `import torch.nn as nn` in a function
    # that the converter writes, an assignment) may be torch's nn where it is read: not known
    other = set()
    for node in _nodes(tree):
        if isinstance(node, ast.Import):
            other.update(a.asname or a.name.split(".")[0] for a in node.names if a.name != "mlx.nn" or not a.asname)
        elif isinstance(node, ast.ImportFrom):
            other.update(a.asname or a.name for a in node.names
                         if not (node.module == "mlx" and node.level == 0 and a.name == "nn"))
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            other.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            other.add(node.name)
            if not isinstance(node, ast.ClassDef):
                other.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
    return frozenset(names - other)


def _known_layers(tree: ast.Module, nn_names: frozenset) -> dict:
    """class name -> attribute -> (MLX layer class, [constructor calls]) where every store of `.attr`
    anywhere in the file is `<self>.attr = <mlx.nn>.<Layer>(...)` of that one layer, inside that class."""
    stores: dict = {}  # attr -> list of (class name or None, layer or None, call)
    for cls in (n for n in _nodes(tree) if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and fn.args.args and target.value.id == fn.args.args[0].arg:
                        stores.setdefault(target.attr, []).append((cls.name, _layer_call(node.value, nn_names),
                                                                   node.value))
                        node._layer_store = True
    other = set()  # any other store of the attribute name makes it unknown
    for node in _nodes(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete, ast.For, ast.With)) \
                and not getattr(node, "_layer_store", False):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    other.add(sub.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                other.add(node.args[1].value)
            else:
                return {}
    known: dict = {}
    for attr, found in stores.items():
        classes = {c for c, _, _ in found}
        kinds = {layer for _, layer, _ in found}
        if attr in other or len(classes) != 1 or len(kinds) != 1 or None in kinds:
            continue
        known.setdefault(classes.pop(), {})[attr] = (kinds.pop(), [call for _, _, call in found])
    return known


_CONV_HELPER = re.compile(r"(Conv[123]d)N(?:CHW|HWC)")


def _with_conv_helpers(tree: ast.Module, nn_names: frozenset) -> frozenset:
    """nn_names plus `Conv2dNHWC=Conv2d` entries for the converter's conv helpers defined in the file
    (transforms/module/layer_values.py: `class Conv2dNHWC(nn.Conv2d)`, torch's constructor, the MLX layer and
    weight layout: timm's halo / lambda attention read `self.q.weight.shape[1]` off one)."""
    helpers = set()
    for node in tree.body:
        match = _CONV_HELPER.fullmatch(node.name) if isinstance(node, ast.ClassDef) else None
        if match and len(node.bases) == 1 and isinstance(node.bases[0], ast.Attribute) \
                and node.bases[0].attr == match.group(1) and isinstance(node.bases[0].value, ast.Name) \
                and node.bases[0].value.id in nn_names:
            helpers.add(f"{node.name}={match.group(1)}")
    return nn_names | helpers


def _layer_call(value, nn_names: frozenset) -> Optional[str]:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
            and isinstance(value.func.value, ast.Name) and value.func.value.id in nn_names \
            and value.func.attr in LAYER_ATTRIBUTES:
        return value.func.attr
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        match = _CONV_HELPER.fullmatch(value.func.id)
        if match and f"{value.func.id}={match.group(1)}" in nn_names:
            return match.group(1)
    return None
