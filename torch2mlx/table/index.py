"""Lookup of rules by torch qualified name, method name and value name (one dict hit each)."""
from __future__ import annotations

from typing import Iterable, Optional

from torch2mlx.table.model import Rule


class RuleIndex:
    """All rules, indexed. Later rules override earlier ones with the same id or key."""

    def __init__(self, rules: Iterable[Rule]):
        by_id: dict[str, Rule] = {}
        for rule in rules:
            by_id[rule.id] = rule
        self.by_id = by_id
        self.functions: dict[str, Rule] = {}
        self.methods: dict[str, Rule] = {}
        self.values: dict[str, Rule] = {}
        self.attributes: dict[str, Rule] = {}
        for rule in by_id.values():
            for name in rule.functions:
                self.functions[name] = rule
            for name in rule.methods:
                self.methods[name] = rule
            for name in rule.values:
                self.values[name] = rule
            for name in rule.attributes:
                self.attributes[name] = rule

    def function(self, qualified_name: str) -> Optional[Rule]:
        return self.functions.get(qualified_name)

    def method(self, name: str) -> Optional[Rule]:
        return self.methods.get(name)

    def value(self, qualified_name: str) -> Optional[Rule]:
        return self.values.get(qualified_name)

    def attribute(self, name: str) -> Optional[Rule]:
        return self.attributes.get(name)

    def __len__(self) -> int:
        return len(self.by_id)
