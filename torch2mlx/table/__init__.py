"""The YAML rule table: schema, loading, signatures and the lookup index."""
from torch2mlx.table.loader import RuleError, load_rule_files, load_default_table
from torch2mlx.table.model import ParamSpec, Rule, Variant
from torch2mlx.table.index import RuleIndex

__all__ = ["RuleError", "load_rule_files", "load_default_table", "Rule", "ParamSpec", "Variant", "RuleIndex"]
