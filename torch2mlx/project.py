"""Cross-file facts for a directory run: names that other project files import.

When `utils.py` says `import torch.nn.functional as F` and `model.py` says
`from .utils import F`, the `F` in model.py is torch's; when `base.py` defines
`class BaseModel(nn.Module)` and `model.py` subclasses it, model.py's class is a module
class too. One cheap `ast` pass over the tree collects these facts before conversion, and where each
layer class is defined (`class_origins`, through re-exports): what such a class does to a layout is read from
its own file's conversion when a file importing it is converted (`api._project_layouts`).
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from torch2mlx.imports import absolute_import
from torch2mlx.layout_facts import ADAPTIVE, KEEP, SPATIAL, may_flag_layout
from torch2mlx.names import TORCH_ROOT, star_names
from torch2mlx.torch_facts import MODULE_BASES


@dataclass(frozen=True)
class ProjectIndex:
    aliases: dict = field(default_factory=dict)          # "pkg.utils.F" -> "torch.nn.functional"
    module_classes: frozenset = frozenset()              # "pkg.base.BaseModel"
    modules: dict = field(default_factory=dict)          # str(path) -> "pkg.utils"
    layout_builders: frozenset = frozenset()             # "pkg.layers.create_conv2d": builds channels-last layers
    # "pkg.SE" (a re-export) / "pkg.layers.SE" -> "pkg.layers.SE": where a module class of the project is defined
    class_origins: dict = field(default_factory=dict)
    # the contents of the files defining layout builders: what their classes do to a layout (`api`'s per-class
    # layout facts, read from those files' conversions) changes with them, and so do the files that import them
    builder_sources: str = ""
    # the contents of the files the channels-last analysis may flag (`layout_facts.may_flag_layout`): the run's
    # layout, one for the whole project (`api._project_layout`), changes with them, and so does every file's output
    layout_sources: str = ""

    def module_of(self, path: Path) -> Optional[str]:
        return self.modules.get(str(Path(path).resolve()))

    def path_of(self, module: str) -> Optional[Path]:
        """The file of module `module` ("pkg.layers"), or None when it is not part of the project."""
        return next((Path(path) for path, name in self.modules.items() if name == module), None)

    def key(self) -> str:
        """Changes when a fact changes (so cached conversions are redone)."""
        data = json.dumps([sorted(self.aliases.items()), sorted(self.module_classes), sorted(self.layout_builders),
                           sorted(self.class_origins.items()), self.builder_sources, self.layout_sources])
        return hashlib.sha256(data.encode()).hexdigest()[:16]


def module_name(path: Path, root: Path) -> str:
    root = root.resolve()
    parts = list(path.resolve().relative_to(root).with_suffix("").parts)
    if (root / "__init__.py").is_file():  # the directory is itself a package: `import pkg.sub` names it
        parts.insert(0, root.name)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _torch_name(node: ast.expr, aliases: dict) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def build_project_index(roots: Iterable[Path], files: Iterable[Path]) -> ProjectIndex:
    roots = [Path(r).resolve() for r in roots]
    facts = []  # (module, {local: torch qual}, {local: project full name}, [(class, bases)])
    builders = []  # (module, {local: project full name}, {def name: (builds a layer itself, {names it calls})})
    modules = {}
    stars = []  # (module, the module it star-imports)
    texts = {}  # module -> its text's digest
    layout_texts = []  # (module, its text's digest) of the files deciding the run's layout
    for path in files:
        path = Path(path).resolve()
        root = next((r for r in roots if path == r or r in path.parents), None)
        if root is None or path.suffix != ".py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
            continue
        name = module_name(path, root) if root.is_dir() else path.stem
        modules[str(path)] = name
        texts[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if may_flag_layout(text):
            layout_texts.append((name, texts[name]))
        is_package = path.name == "__init__.py"
        torch_locals, project_locals, classes, defs = {}, {}, [], []
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == TORCH_ROOT:
                        torch_locals[a.asname or a.name.split(".")[0]] = a.name if a.asname else TORCH_ROOT
            elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                stars.append((name, absolute_import(name, node, is_package)))
            elif isinstance(node, ast.ImportFrom):
                source = absolute_import(name, node, is_package)
                for a in node.names:
                    local = a.asname or a.name
                    if source == TORCH_ROOT or source.startswith(TORCH_ROOT + "."):
                        torch_locals[local] = f"{source}.{a.name}"
                    else:
                        project_locals[local] = f"{source}.{a.name}"
            elif isinstance(node, ast.ClassDef):
                classes.append((node.name, node.bases))
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                defs.append(node)
        facts.append((name, torch_locals, project_locals, classes))
        builders.append((name, project_locals, _called_names(defs, torch_locals)))

    aliases, module_classes = _cross_file_facts(facts, stars)
    layout_builders = _layout_builders(builders)
    origins = _class_origins(facts, module_classes)
    sources = sorted({(module, texts[module]) for module in (full.rsplit(".", 1)[0] for full in origins.values()
                                                              if full in layout_builders) if module in texts})
    return ProjectIndex(aliases, frozenset(module_classes), modules, layout_builders, origins,
                        hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16] if sources else "",
                        hashlib.sha256(json.dumps(sorted(layout_texts)).encode()).hexdigest()[:16] if layout_texts else "")


_CONTAINERS = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})


def _class_origins(facts: list, module_classes: set) -> dict:
    """Full name of each layer class of the project (an nn.Module class, or an nn.Sequential subclass such as
    torchvision's ConvNormActivation), as defined and as re-exported by `from .x import C` -> the full name where
    its `class` statement is (a fixed point over bases and re-exports)."""
    layers = set(module_classes)
    changed = True
    while changed:
        changed = False
        for name, torch_locals, project_locals, classes in facts:
            for cls, bases in classes:
                full = f"{name}.{cls}"
                if full not in layers and any(
                        _torch_name(base, torch_locals) in _CONTAINERS
                        or (isinstance(base, ast.Name) and (f"{name}.{base.id}" in layers
                                                            or project_locals.get(base.id) in layers))
                        for base in bases):
                    layers.add(full)
                    changed = True
    origins = {f"{name}.{cls}": f"{name}.{cls}" for name, _, _, classes in facts for cls, _ in classes}
    origins = {full: full for full in origins if full in layers}
    changed = True
    while changed:
        changed = False
        for name, _, project_locals, _ in facts:
            for local, target in project_locals.items():
                full = f"{name}.{local}"
                if target in origins and full not in origins:
                    origins[full] = origins[target]
                    changed = True
    return origins


def _cross_file_facts(facts: list, stars: list) -> tuple[dict, set]:
    """Torch aliases and nn.Module classes by full name, through re-exports, star imports and base
    classes across files (iterated to a fixed point)."""
    aliases: dict = {}
    module_classes: set = set()
    for name, torch_locals, _, _ in facts:
        for local, qual in torch_locals.items():
            aliases[f"{name}.{local}"] = qual
    changed = True
    while changed:
        changed = _follow_stars(stars, aliases, module_classes)
        for name, torch_locals, project_locals, classes in facts:
            for local, target in project_locals.items():
                full = f"{name}.{local}"
                if target in aliases and full not in aliases:
                    aliases[full] = aliases[target]
                    changed = True
                if target in module_classes and full not in module_classes:
                    module_classes.add(full)
                    changed = True
            for cls, bases in classes:
                full = f"{name}.{cls}"
                if full not in module_classes and any(
                        _is_module_base(base, name, torch_locals, project_locals, module_classes) for base in bases):
                    module_classes.add(full)
                    changed = True
    return aliases, module_classes


def _follow_stars(stars: list, aliases: dict, module_classes: set) -> bool:
    """`from .parts import *`: what parts binds, the importing module binds too. Whether anything was added."""
    changed = False
    for name, source in stars:
        for local, full in star_names(aliases, source):
            if f"{name}.{local}" not in aliases:
                aliases[f"{name}.{local}"] = aliases[full]
                changed = True
        for local, _ in star_names(module_classes, source):
            if f"{name}.{local}" not in module_classes:
                module_classes.add(f"{name}.{local}")
                changed = True
    return changed


def _is_module_base(base: ast.expr, module: str, torch_locals: dict, project_locals: dict, module_classes: set) -> bool:
    if _torch_name(base, torch_locals) in MODULE_BASES:
        return True
    local = base.id if isinstance(base, ast.Name) else None
    return local is not None and (f"{module}.{local}" in module_classes or project_locals.get(local) in module_classes)


def _called_names(defs: list, torch_locals: dict) -> dict:
    """def name -> (whether it calls a torch layer that is channels-last in MLX, the plain names it calls,
    whether it permutes a tensor)."""
    channels_last = set(SPATIAL) | set(KEEP) | set(ADAPTIVE)
    found = {}
    for node in defs:
        direct, names, permutes = False, set(), False
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                qual = _torch_name(sub.func, torch_locals)
                if qual is not None and qual.startswith("torch.nn.") and qual.rsplit(".", 1)[-1] in channels_last:
                    direct = True
                elif isinstance(sub.func, ast.Name):
                    names.add(sub.func.id)
                elif isinstance(sub.func, ast.Attribute) and sub.func.attr == "permute":
                    permutes = True
        found[node.name] = (direct, names, permutes)
    return found


def _layout_builders(files: list) -> frozenset:
    """Project classes and functions that build a channels-last layer, directly or through others (a fixed point:
    re-exports and builders calling builders in other files)."""
    built: set = set()
    changed = True
    while changed:
        changed = False
        for module, project_locals, defs in files:
            for local, target in project_locals.items():
                full = f"{module}.{local}"
                if target in built and full not in built:
                    built.add(full)
                    changed = True
            for name, (direct, calls, permutes) in defs.items():
                full = f"{module}.{name}"
                if full in built:
                    continue
                # a class that permutes (a LayerNorm2d) built by a builder of its file may be converted
                # channels-last along with it (nn-layout promotes such classes): count it as a builder too
                promoted = permutes and any(name in other[1] and f"{module}.{o}" in built for o, other in defs.items())
                if direct or promoted or any(f"{module}.{c}" in built or project_locals.get(c) in built for c in calls):
                    built.add(full)
                    changed = True
    return frozenset(built)
