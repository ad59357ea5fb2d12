"""Str values (scalar_facts.str_names, tensors.is_str): the idioms of timm that read a str's `.split(...)` as a
tensor's. deepseek_vit.py:763 / qwen3_vit.py:787 (`name.split(".", 1)` over a str-keyed dict literal's keys, at
import), _efficientnet_builder.py:107 (`assert isinstance(block_str, str)` then `block_str.split('_')`),
vgg.py:402 (`variant: str`), create_norm_act.py:125's chain of str methods. Unknown stays unknown."""
from __future__ import annotations

import ast
import textwrap

import libcst as cst
import pytest

from torch2mlx.scalar_facts import str_key_dicts, str_names
from torch2mlx.tensors import is_str

DEEPSEEK = '''
_SOURCE_CFGS = {
    'deepseek_vit_412m.deepseek_v4_flash': _cfg(hf_hub_id='x'),
    'deepseek_vit_412m.exp': _cfg(hf_hub_id='y'),
}

default_cfgs = generate_default_cfgs({
    f'{name.split(".", 1)[0]}{suffix}.{name.split(".", 1)[1]}': dict(cfg)
    for name, cfg in _SOURCE_CFGS.items()
    for suffix in ('', '_align', '_enc')
})
'''


def _module_strs(source: str) -> frozenset:
    tree = ast.parse(textwrap.dedent(source))
    return str_names(tree, frozenset(), str_key_dicts(tree))


def test_keys_of_a_str_keyed_dict_literal_are_strs_at_module_level():
    assert "name" in _module_strs(DEEPSEEK)
    assert "cfg" not in _module_strs(DEEPSEEK) and "suffix" not in _module_strs(DEEPSEEK)


@pytest.mark.parametrize("change", [
    "_SOURCE_CFGS[1] = 2",                       # a key of another type
    "_SOURCE_CFGS.update({1: 2})",               # changed by a method
    "register(_SOURCE_CFGS)",                    # passed on: may be changed there
    "_SOURCE_CFGS = {1: 2}",                     # bound twice
    "for name in range(3):\n    pass",           # `name` bound otherwise too
    "name = 3",
    "def f(_SOURCE_CFGS):\n    return _SOURCE_CFGS",
])
def test_a_dict_or_name_not_only_read_is_not_followed(change):
    assert "name" not in _module_strs(DEEPSEEK + "\n" + change + "\n")


def _fn_strs(source: str, shadowed: frozenset = frozenset()) -> frozenset:
    return str_names(ast.parse(textwrap.dedent(source)).body[0], shadowed)


def test_asserted_annotated_and_computed_strs():
    strs = _fn_strs('''
        def _decode_block_str(block_str, variant: str, n):
            """A docstring first."""
            assert isinstance(block_str, str)
            ops = block_str.split('_')
            cfg = variant.replace('_', '').lower()
            label = f'{n}' + cfg
            named = str(n)
            k = n
            return ops
        ''')
    assert {"block_str", "variant", "cfg", "label", "named"} <= strs
    assert not {"ops", "n", "k"} & strs


@pytest.mark.parametrize("source", [
    "def f(s):\n    s.split('_')\n    assert isinstance(s, str)\n",           # read before the assert
    "def f(s):\n    assert isinstance(s, str)\n    s = s.encode()\n",          # rebound after it
    "def f(s):\n    if s:\n        assert isinstance(s, str)\n",               # not a top-level statement
    "def f(s='a'):\n    return s\n",                                          # a str default: a caller passes anything
    "def f(s: str, c):\n    if c:\n        s = c\n    return s\n",           # a binding of unknown type
    "def f(s):\n    assert isinstance(s, str)\n    str = bytes\n",            # `str` is not the builtin here
])
def test_what_may_not_be_a_str_stays_unknown(source):
    assert "s" not in _fn_strs(source)


def test_a_shadowed_str_builtin_is_not_trusted():
    strs = _fn_strs("def f(n):\n    k = str(n)\n    assert isinstance(n, str)\n", frozenset({"str"}))
    assert "k" not in strs and "n" not in strs and "str()" not in strs


@pytest.mark.parametrize("expr, expected", [
    ("norm_layer.replace('_', '').lower().split", False),   # the call is not a str, its receiver is
    ("norm_layer.replace('_', '').lower()", True),
    ("f'{x}.{y}'", True),
    ("'a' 'b'", True),
    ("b'ab'", False),
    ("'%d' % n", True),
    ("name[0]", True),
    ("str(n)", True),
    ("n.lower()", False),                                    # a method of a value of unknown type
    ("n + 'a'", False),
    ("x", False),
])
def test_is_str_on_the_pass_nodes(expr, expected):
    assert is_str(cst.parse_expression(expr), frozenset({"norm_layer", "name", "str()"})) is expected
