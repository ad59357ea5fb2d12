"""The syntax of an MLX template: a Python expression with `{name}` placeholders.

The loader checks that every template of a rule file parses (`loader.py`); `template.py`
expands them. Both parse through `parse_template_syntax` (cached), so a template checked
at load time is not parsed again when it is expanded.
"""
from __future__ import annotations

import functools
import re

import libcst as cst

PLACEHOLDER = re.compile(r"\{(\w+)\}")
PREFIX = "__t2m_"  # `{dim}` parses as the name `__t2m_dim`


@functools.lru_cache(maxsize=4096)
def parse_template_syntax(template: str) -> cst.BaseExpression:
    """The template as a libcst expression, placeholders as prefixed names; raises on a syntax error."""
    return cst.parse_expression(PLACEHOLDER.sub(lambda m: PREFIX + m.group(1), template))
