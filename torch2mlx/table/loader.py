"""Load YAML rule files, validate them against the JSON Schema, build Rule objects.

YAML is read with a SafeLoader (no object construction), and every error names
the file, the line of the offending entry and what is wrong.

`yaml` and `jsonschema` are imported only when a rule file is actually parsed: a run whose
index comes from the on-disk cache (`torch2mlx.cache.load_index`) never needs them.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Iterable, Sequence

from torch2mlx.table.model import Example, ParamSpec, Rule, Signature, Variant
from torch2mlx.table.template_syntax import parse_template_syntax


class RuleError(Exception):
    """A rule file is invalid. The message names file:line and the problem."""


@functools.lru_cache(maxsize=1)
def _line_loader():
    """A SafeLoader that remembers the line of every mapping (as key `__line__`)."""
    import yaml

    class _LineLoader(yaml.SafeLoader):
        pass

    def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping

    _LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return _LineLoader


def _strip_lines(obj):
    if isinstance(obj, dict):
        return {k: _strip_lines(v) for k, v in obj.items() if k != "__line__"}
    if isinstance(obj, list):
        return [_strip_lines(v) for v in obj]
    return obj


def _line_of(raw, path: Sequence) -> int:
    """The line of the innermost mapping on a JSON-schema error path."""
    line = raw.get("__line__", 1) if isinstance(raw, dict) else 1
    node = raw
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "__line__" in node:
            line = node["__line__"]
    return line


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _build_rule(entry: dict, where: str) -> Rule:
    try:
        signature = Signature.parse(entry["signature"]) if "signature" in entry else None
    except (SyntaxError, ValueError) as exc:
        raise RuleError(f"{where}: rule {entry['id']!r}: bad signature {entry['signature']!r}: {exc}") from None
    params = {}
    for name, spec in (entry.get("params") or {}).items():
        if signature is not None and signature.get(name) is None:
            raise RuleError(f"{where}: rule {entry['id']!r}: params.{name} is not in the signature")
        params[name] = ParamSpec(**{k: v for k, v in spec.items() if k != "__line__"})
    if ("function" in entry or "method" in entry) and entry["status"] != "manual" and "handler" not in entry:
        if signature is None or ("mlx" not in entry and "variants" not in entry):
            raise RuleError(f"{where}: rule {entry['id']!r}: a call rule needs `signature` and `mlx` (or `variants`)")
    for template in [entry.get("mlx")] + [v["mlx"] for v in entry.get("variants", [])]:
        if template is None:
            continue
        try:
            parse_template_syntax(template)
        except Exception as exc:  # libcst's ParserSyntaxError, or a bad placeholder
            raise RuleError(f"{where}: rule {entry['id']!r}: template {template!r} is not a Python expression: "
                            f"{str(exc).splitlines()[0]}") from None
    examples = tuple(
        Example(**{k: v for k, v in ex.items() if k != "__line__"}) for ex in entry.get("examples", [])
    )
    return Rule(
        id=entry["id"],
        status=entry["status"],
        functions=_as_tuple(entry.get("function")),
        methods=_as_tuple(entry.get("method")),
        values=_as_tuple(entry.get("value")),
        attributes=_as_tuple(entry.get("attribute")),
        ambiguous_method=entry.get("ambiguous_method", False),
        signature=signature,
        mlx=entry.get("mlx"),
        variants=tuple(Variant(tuple(sorted((k, v) for k, v in v_["when"].items() if k != "__line__")), v_["mlx"]) for v_ in entry.get("variants", [])),
        condition=entry.get("condition"),
        assumes=entry.get("assumes"),
        why=entry.get("why"),
        handler=entry.get("handler"),
        returns=entry.get("returns", "tensor"),
        context=entry.get("context"),
        namedtuple=_as_tuple(entry.get("namedtuple")),
        params=params,
        notes=entry.get("notes"),
        examples=examples,
        source=where,
    )


def load_rule_text(text: str, filename: str) -> list[Rule]:
    import jsonschema
    import yaml

    from torch2mlx.table.schema import RULE_FILE

    try:
        raw = yaml.load(text, Loader=_line_loader())  # noqa: S506 - _line_loader() is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RuleError(f"{filename}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {"rules": []}
    clean = _strip_lines(raw)
    validator = jsonschema.Draft202012Validator(RULE_FILE)
    errors = sorted(validator.iter_errors(clean), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        line = _line_of(raw, path)
        entry = ""
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            rid = clean["rules"][path[1]].get("id", f"#{path[1]}") if isinstance(clean["rules"][path[1]], dict) else f"#{path[1]}"
            entry = f" rule {rid!r}:"
        loc = "/".join(str(p) for p in path) or "<top>"
        raise RuleError(f"{filename}:{line}:{entry} {loc}: {err.message}")
    rules = []
    seen = set()
    for raw_entry, entry in zip(raw["rules"], clean["rules"]):
        where = f"{filename}:{raw_entry['__line__']}"
        if entry["id"] in seen:
            raise RuleError(f"{where}: duplicate rule id {entry['id']!r}")
        seen.add(entry["id"])
        rules.append(_build_rule(entry, where))
    return rules


def read_rule_file(path: Path) -> str:
    """The text of a rule file; a RuleError naming it when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{Path(path)}: cannot read rule file: {exc}") from None


@functools.lru_cache(maxsize=64)
def _rules_of_text(text: str, filename: str) -> tuple[Rule, ...]:
    """`load_rule_text`, memoised on the text (rules are frozen, so sharing them is safe)."""
    return tuple(load_rule_text(text, filename))


def load_rule_texts(sources: Iterable[tuple[str, str]]) -> list[Rule]:
    """Rules of (filename, text) pairs, in order."""
    rules: list[Rule] = []
    for filename, text in sources:
        rules.extend(_rules_of_text(text, filename))
    return rules


def load_rule_files(paths: Iterable[Path]) -> list[Rule]:
    return load_rule_texts((str(Path(path)), read_rule_file(path)) for path in paths)


def default_rule_dir() -> Path:
    """The shipped table: inside the wheel (torch2mlx/rules) or the repo's top-level rules/."""
    packaged = Path(__file__).resolve().parents[1] / "rules"  # what importlib.resources finds, without importing it
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "rules"


def default_rule_paths() -> list[Path]:
    return sorted(default_rule_dir().glob("*.yaml"))


@functools.lru_cache(maxsize=1)
def load_default_table() -> tuple[Rule, ...]:
    return tuple(load_rule_files(default_rule_paths()))


def table_version() -> str:
    """A hash of the shipped rule files (for caches)."""
    h = hashlib.sha256()
    for p in default_rule_paths():
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
