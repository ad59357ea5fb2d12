"""The pure core: `convert_source(text) -> ConversionResult`. No I/O, never prints."""
from __future__ import annotations

import ast
import functools
import io
import tokenize
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import libcst as cst

from torch2mlx import closed_world, emitter, importable, positions
from torch2mlx import hub as hubs
from torch2mlx.array_facts import TORCH_ONLY_MEMBERS
from torch2mlx.cache import load_index
from torch2mlx.diagnostics import Diagnostic, InputError, Kind, Severity
from torch2mlx.fileio import decode_source  # noqa: F401  (public: torch2mlx.decode_source)
from torch2mlx.imports import absolute_import
from torch2mlx.layout_facts import CONTAINER_LAYOUT_MARK, ProjectLayouts, may_flag_layout
from torch2mlx.names import analyze, cold_statements, star_names
from torch2mlx.rewriter import TableRewriter
from torch2mlx.table import RuleIndex

CHANNELS_LAST = "channels-last"  # the layouts a conversion builds (`_convert`), and "auto" (`convert_source`)
TORCH = "torch"
AUTO = "auto"


@dataclass(frozen=True)
class ConversionResult:
    """What converting one source text produced."""

    code: str
    original: str
    diagnostics: tuple[Diagnostic, ...] = ()
    converted: int = 0  # torch API uses translated

    @property
    def changed(self) -> bool:
        return self.code != self.original

    @property
    def flagged(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity is not Severity.INFO)


_INDEX_CACHE: dict = {}


def build_index(extra_rule_files: Sequence[Path] = ()) -> RuleIndex:
    """The shipped rules plus `extra_rule_files`, indexed: once per process, and from the on-disk
    cache (`torch2mlx.cache.load_index`, keyed by the rule files' contents and the code) when valid."""
    key = tuple(str(p) for p in extra_rule_files)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = load_index(extra_rule_files)
    return _INDEX_CACHE[key]


def _project_imports(tree: ast.Module, cross_file, facts) -> frozenset:
    """Names imported at module level from other project files whose full name is in `facts`."""
    if not cross_file:
        return frozenset()
    project, module, is_package = cross_file
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("torch"):
            source = absolute_import(module, node, is_package)
            found.update(a.asname or a.name for a in node.names if f"{source}.{a.name}" in facts)
            if any(a.name == "*" for a in node.names):
                found.update(name for name, _ in star_names(facts, source))
    return frozenset(found)


def _project_torch_locals(tree: ast.Module, cross_file) -> frozenset:
    """Names imported from other project files that are torch aliases there."""
    return _project_imports(tree, cross_file, cross_file[0].aliases) if cross_file else frozenset()


def _project_layout_locals(tree: ast.Module, cross_file) -> frozenset:
    """Names imported from other project files that build channels-last layers there, and that this file
    calls (builds a layer with): importing one to subclass or re-export it does not count."""
    found = _project_imports(tree, cross_file, cross_file[0].layout_builders) if cross_file else frozenset()
    if not found:
        return found
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return found & called


def _project_layouts(tree: ast.Module, cross_file, builders: frozenset, rule_files: Sequence[Path], index: RuleIndex,
                     hub: Sequence[str]) -> ProjectLayouts:
    """The layout facts of other project files this file uses (directory runs): the names it imports that build
    channels-last layers there (`builders`), and what the layer classes it imports do to a layout, as their own
    file's conversion makes them (`_class_layouts`): `from .layers import Block` then `Block(c)` in a
    channels-last class is followed like a class of this file. Nothing is assumed of a class whose file is not
    converted alike (another package, a file that fails, a class flagged there): it stays unknown (flagged)."""
    if not cross_file:
        return ProjectLayouts(builders)
    project, module, is_package = cross_file
    classes = {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or (node.module or "").startswith("torch") \
                or any(a.name == "*" for a in node.names):
            continue
        source = absolute_import(module, node, is_package)
        for alias in node.names:
            local, origin = alias.asname or alias.name, project.class_origins.get(f"{source}.{alias.name}")
            if origin is None:
                continue
            defining, cls = origin.rsplit(".", 1)
            path = project.path_of(defining)
            if path is None or defining == module:
                continue
            layout = _class_layouts(path, defining, project, tuple(rule_files), index, tuple(hub)).get(cls)
            if layout is not None:
                classes[local] = layout
    return ProjectLayouts(builders, classes)


_CLASS_LAYOUTS: dict = {}  # (path, its text, project key, rule files, hub) -> (its conversion, class name -> layout)
_IN_PROGRESS: set = set()  # the files whose facts are being computed (a cycle of imports gives no facts)


def _class_layouts(path: Path, module: str, project, rule_files: tuple, index: RuleIndex, hub: tuple) -> dict:
    """Module classes of `path` that its conversion (the one a directory run writes: same project, rules and hubs)
    makes take a channels-last value and give one, followed without a flag (nn-layout's own classes), and that
    no warning of that conversion falls in: class name -> the layout they give. Once per process and file."""
    return _channels_last_conversion(path, module, project, rule_files, index, hub)[1]


def _channels_last_conversion(path: Path, module: str, project, rule_files: tuple, index: RuleIndex,
                              hub: tuple) -> tuple:
    """The channels-last conversion of project file `path` (None where it cannot be read or converted), and what
    `_class_layouts` reads of it. Once per process and file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, {}
    key = (str(path), text, project.key(), rule_files, hub)
    if key in _CLASS_LAYOUTS:
        return _CLASS_LAYOUTS[key]
    if key in _IN_PROGRESS:
        return None, {}
    _IN_PROGRESS.add(key)
    try:
        result, ran = _convert(text, str(path), rule_files, index, project, module, hub)
    except InputError:
        result, ran = None, []
    finally:
        _IN_PROGRESS.discard(key)
    found: dict = {}
    layout_transform = next((t for t in ran if t.id == "nn-layout"), None)
    if result is not None and layout_transform is not None:
        flagged = [d.line for d in result.diagnostics if d.severity is not Severity.INFO]
        spans = {n.name: (n.lineno, n.end_lineno or n.lineno) for n in ast.parse(text).body if isinstance(n, ast.ClassDef)}
        for cls, layout in layout_transform.class_layouts().items():
            start, end = spans.get(cls, (0, -1))
            if start <= end and not any(start <= line <= end for line in flagged):
                found[cls] = layout
    _CLASS_LAYOUTS[key] = (result, found)
    return result, found


def _imports_torch_from_project(project, module_name: Optional[str]) -> bool:
    """Whether this file imports a torch alias or module class from another project file."""
    if project is None or module_name is None:
        return False
    prefix = f"{module_name}."
    return any(k.startswith(prefix) for k in project.aliases) or any(c.startswith(prefix) for c in project.module_classes)


def _check_syntax(text: str, path: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise InputError(f"syntax error: {exc.msg}", path, exc.lineno or 0, exc.offset or 0) from None
    except (RecursionError, MemoryError):
        raise InputError("expression nested too deeply to parse", path) from None
    except ValueError as exc:  # e.g. null bytes
        raise InputError(f"cannot parse: {exc}", path) from None


def _parse(text: str, path: str) -> tuple[ast.Module, cst.Module]:
    tree = _check_syntax(text, path)
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        raise InputError(f"syntax error: {exc.message}", path, exc.raw_line, exc.raw_column + 1) from None
    except RecursionError:
        raise InputError("expression nested too deeply to parse", path) from None
    _check_tail_round_trip(module, text, path)
    return tree, module


def _check_tail_round_trip(module: cst.Module, text: str, path: str) -> None:
    """libcst drops some comment/whitespace lines after the last statement (e.g. an indented
    `#` line before a whitespace-only last line). Refuse such a file rather than lose a comment."""
    parts = [module.code_for_node(module.body[-1])] if module.body else [module.code_for_node(h) for h in module.header]
    parts += [module.code_for_node(f) for f in module.footer]
    tail = "".join(parts)
    if not module.has_trailing_newline and tail.endswith(module.default_newline):
        tail = tail[: -len(module.default_newline)]
    if not text.endswith(tail):
        line = text.count("\n") + 1
        raise InputError("the end of this file cannot be reproduced exactly by the parser (libcst drops "
                         "indented comment lines before trailing whitespace); strip trailing whitespace and retry",
                         path, line, 0)


def convert_source(text: str, path: str = "<string>", *, rule_files: Sequence[Path] = (), index: Optional[RuleIndex] = None,
                   project=None, module_name: Optional[str] = None, hub: Sequence[str] = (),
                   layout: str = "auto") -> ConversionResult:
    """Translate one PyTorch source text to MLX.

    Raises InputError for input that is not valid Python; anything else untranslatable
    is reported in `diagnostics` and marked in the code with a `# torch2mlx:` comment.
    `project` (a `torch2mlx.project.ProjectIndex`) and `module_name` give cross-file facts
    in a directory run: torch aliases and nn.Module classes imported from other files. `hub` names model
    hubs whose machinery is imported from MLX stand-ins (`("transformers",)`: torch2mlx/hub, docs/transformers.md).
    `layout`: where MLX's channels-last layers (convolutions, pools, norms) get their data. "channels-last": the
    classes that build them take and keep feature maps channels-last (nn-layout; what it cannot follow is flagged);
    "torch": every such layer is built as a helper taking torch's (N, C, ...) layout, so the code keeps torch's
    layout throughout (transforms/layout/torch_layout.py); "auto": channels-last unless that analysis flags the
    file (a single file) or any file of the project (a directory run: one layout for the whole project).
    """
    if layout not in (AUTO, CHANNELS_LAST, TORCH):
        raise ValueError(f"layout={layout!r}: one of {AUTO!r}, {CHANNELS_LAST!r}, {TORCH!r}")
    if layout == AUTO and project is None:  # the file alone: torch's layout where the channels-last analysis flags it
        result = _convert(text, path, rule_files, index, project, module_name, hub)[0]
        if _layout_flagged(result):
            result = _convert(text, path, rule_files, index, project, module_name, hub, TORCH)[0]
        return result
    if layout == AUTO:
        layout = _project_layout(project, tuple(rule_files), index, tuple(hub))
    return _convert(text, path, rule_files, index, project, module_name, hub, layout)[0]


def _layout_flagged(result: ConversionResult) -> bool:
    """A warning of the channels-last analysis (nn-layout, its script-layer part, a container it does not follow)."""
    return any(d.severity is not Severity.INFO and (d.rule_id in _LAYOUT_RULES or CONTAINER_LAYOUT_MARK in d.message)
               for d in result.diagnostics)


_LAYOUT_RULES = frozenset({"nn-layout", "nn-script-layers"})
_PROJECT_LAYOUT: dict = {}  # (project key, rule files, hub) -> CHANNELS_LAST or TORCH


def _project_layout(project, rule_files: tuple, index: Optional[RuleIndex], hub: tuple) -> str:
    """The layout of a directory run, one for the whole project: torch's where the channels-last analysis flags any
    of its files (a class in torch's layout hands its data to what it calls in torch's layout, class values given by
    other files included: all of them must take it), else channels-last. Once per process and project: each file
    that builds channels-last layers is converted channels-last (the first flagged one decides; the conversions
    are those `_class_layouts` reads too)."""
    key = (project.key(), tuple(str(p) for p in rule_files), hub)
    if key in _PROJECT_LAYOUT:
        return _PROJECT_LAYOUT[key]
    _PROJECT_LAYOUT[key] = CHANNELS_LAST  # (while deciding: a conversion started from here is channels-last)
    index = index or build_index(rule_files)
    decided = CHANNELS_LAST
    for path, module in sorted(project.modules.items()):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not may_flag_layout(text):
            continue  # no channels-last layer, remapped function or container named: nothing to flag
        result = _channels_last_conversion(Path(path), module, project, rule_files, index, hub)[0]
        if result is not None and _layout_flagged(result):
            decided = TORCH
            break
    _PROJECT_LAYOUT[key] = decided
    return decided


def _chooser_text(text: str, tree: ast.Module) -> str:
    """The text whose words choose the transforms: without the tool's own output, so that a second pass over a
    converted file chooses what the first did. Left out: `# torch2mlx:` flag comments (a flag names the torch API
    it kept, e.g. `torch.types._size`) and the top-level defs / classes under a generated-helper mark (a torch_base
    stand-in reads `getattr` and names ImportError)."""
    if "# torch2mlx" not in text and "# mlx helper generated" not in text:  # not the tool's output: all of it
        return text
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()  # 0-based line numbers
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
        above = first - 1
        marked = False
        while above >= 0 and lines[above].lstrip().startswith("#"):  # the comment block right above it
            marked = marked or emitter.is_generated_mark(lines[above].strip())
            above -= 1
        if marked:
            drop.update(range(first, node.end_lineno or first + 1))
    try:
        comments = [tok for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                    if tok.type == tokenize.COMMENT and tok.string.startswith(emitter.FLAG_PREFIX.rstrip())]
    except (tokenize.TokenError, SyntaxError):  # valid Python tokenizes; if not, choose by the whole text
        return text
    cut = {tok.start[0] - 1: tok.start[1] for tok in comments}
    kept = []
    for i, line in enumerate(lines):
        if i in drop:
            continue
        kept.append(line[:cut[i]] + "\n" if i in cut else line)
    return "".join(kept)


def _convert(text: str, path: str, rule_files: Sequence[Path], index: Optional[RuleIndex], project,
             module_name: Optional[str], hub: Sequence[str], layout: str = CHANNELS_LAST) -> tuple[ConversionResult, list]:
    """`convert_source`, and the transforms that ran (what they found is read for other files: `_class_layouts`).
    `layout`: `CHANNELS_LAST` (the channels-last analysis, nn-layout) or `TORCH` (every class in torch's layout:
    transforms/layout/torch_layout.py)."""
    if "torch" not in text and not _imports_torch_from_project(project, module_name):
        # nothing to translate; still report invalid Python, as for any file
        _check_syntax(text.lstrip("\ufeff"), path)
        return ConversionResult(text, text), []
    if text.startswith("\ufeff"):  # a UTF-8 BOM (kept by decode_source): convert the rest, keep the mark
        rest, ran = _convert(text[1:], path, rule_files, index, project, module_name, hub, layout)
        return ConversionResult("\ufeff" + rest.code, text, rest.diagnostics, rest.converted), ran
    index = index or build_index(rule_files)
    tree, module = _parse(text, path)
    hot_attrs = _hot_attributes(index)
    cross_file = None
    if project is not None and module_name is not None:
        cross_file = (project, module_name, Path(path).name == "__init__.py")
    module_scope, scopes = analyze(tree, hot_attrs, cross_file)
    layout_builders = _project_layout_locals(tree, cross_file)
    hub_plan = hubs.plan(hub, tree, path, module_name, Path(path).name == "__init__.py") if hub else None
    # the stand-ins' module classes and `init` alias: the transforms for nn.Module classes and nn.init run, as
    # for those words in the text (not every transform, as for nn.Module classes of other project files)
    chooser = _chooser_text(text, tree)
    chooser = chooser + hub_plan.hint if hub_plan is not None else chooser
    transforms = [cls() for cls in _transform_classes()  # layer builders of other files matter to nn-layout only
                  if cls().applies_to(chooser) or (module_scope.project_classes and not cls.text_decides)
                  or (layout_builders and cls.id == "nn-layout")]
    if layout == TORCH:  # no channels-last layer anywhere: nothing of other files' layouts matters, no script
        # layer call needs transposes (nn-script-layers)
        transforms = [t.torch_layout_build() if t.id == "nn-layout" else t for t in transforms
                      if t.id != "nn-script-layers"]
    elif any(t.id == "nn-layout" for t in transforms):
        layout_builders = _project_layouts(tree, cross_file, layout_builders, rule_files, index, hub)
    if hub_plan is not None:  # module classes and torch aliases of the stand-ins, known before the pass
        hub_plan.apply(module_scope)
    for t in transforms:
        t.prepare(tree, module_scope)
    if any(t.needs_every_statement for t in transforms):
        cold: dict = {}
        for scope in scopes:
            scope.interesting = True
    else:
        cold = positions.cold_statement_map(module, tree, cold_statements(tree, module_scope.hot_names, hot_attrs))
    rewriter = TableRewriter(index, module_scope, scopes, transforms, cold, layout_builders)
    try:
        new_module = module.visit(rewriter)
        rewriter.findings.extend(rewriter.statement_findings[0])  # raised outside any statement
        project_torch = _project_torch_locals(tree, cross_file)
        code = emitter.finish(new_module, rewriter.roots_used, rewriter.module_prelude,
                              project_torch=project_torch)
    except RecursionError:
        raise InputError("expression nested too deeply to convert", path) from None
    hub_diagnostics: tuple = ()
    if hub_plan is not None:
        code, hub_diagnostics = hub_plan.rewrite(code, path)
    own_packages = frozenset(m.split(".")[0] for m in project.modules.values()) if project is not None else frozenset()
    if hub_plan is not None:  # every transformers import is the plan's: stand-in, kept (runs without torch) or flagged
        own_packages |= {"transformers"}
    code, leftovers = closed_world.audit(code, text, own_packages, single_file=project is None)
    code = importable.localize_torch_imports(code, _project_torch_locals(tree, cross_file))
    diagnostics = _diagnostics(module, tree, text, rewriter, path)
    if hub_diagnostics:
        diagnostics = tuple(sorted(diagnostics + hub_diagnostics, key=lambda d: (d.line, d.column)))
    if leftovers:
        diagnostics = tuple(sorted(diagnostics + tuple(
            Diagnostic(left.rule_id, Kind.UNKNOWN_API, Severity.WARNING, left.message, path, left.line, left.column)
            for left in leftovers), key=lambda d: (d.line, d.column)))
    return ConversionResult(code, text, diagnostics, rewriter.converted), transforms


@functools.lru_cache(maxsize=1)
def _transform_classes() -> tuple:
    from torch2mlx.transforms import discover

    return tuple(discover())


_HOT_ATTRS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hot_attributes(index: RuleIndex) -> frozenset:
    """Attribute names that make a statement worth visiting: rule methods, what transforms watch,
    and torch-only Tensor members (on a known array they are flagged, never passed through)."""
    if index not in _HOT_ATTRS:
        _HOT_ATTRS[index] = frozenset(index.methods) | frozenset(index.attributes) | _transform_attrs() | TORCH_ONLY_MEMBERS
    return _HOT_ATTRS[index]


@functools.lru_cache(maxsize=1)
def _transform_attrs() -> frozenset:
    """Attribute names transforms care about (so subtrees using them are not skipped)."""
    names: set = set()
    for cls in _transform_classes():
        names |= set(getattr(cls, "hot_attributes", ()))
    return frozenset(names)


def _diagnostics(module: cst.Module, tree: ast.Module, text: str, rewriter: TableRewriter, path: str) -> tuple[Diagnostic, ...]:
    if not rewriter.findings:
        return ()
    where = positions.resolve(module, tree, text, [(f.node, f.statement) for f in rewriter.findings])
    out = []
    for f in rewriter.findings:
        line, col = where.get(id(f.node), (0, 0))
        out.append(Diagnostic(f.rule_id, Kind(f.kind), Severity(f.severity), f.message, path, line, col, f.table_id))
    out.sort(key=lambda d: (d.line, d.column))
    return tuple(out)
