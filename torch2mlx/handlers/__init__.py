"""Python handlers for the few rules a template cannot express.

A rule names its handler (`handler: tensor_to`); each handler is a small function,
registered by name with `@register(name)` in the module that defines it, that returns the MLX
expression and the MLX module aliases it uses, or raises `Flag` to leave the call in place.
Handlers live in this package, or next to the transforms of their feature (transforms/module/:
nn.Sequential and the other containers, recurrent and attention layers, vision helpers).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from torch2mlx.binding import Flag

HANDLERS: dict[str, Callable] = {}


def register(name: str):
    def deco(fn: Callable) -> Callable:
        HANDLERS[name] = fn
        return fn
    return deco


def run(rule, original, call, receiver, rewriter):
    if not _discovered:
        _discover()
    try:
        fn = HANDLERS[rule.handler]
    except KeyError:
        raise Flag(f"rule names an unknown handler {rule.handler!r}", "internal-error") from None
    return fn(rule, original, call, receiver, rewriter)


_discovered = False


# The packages whose modules may register handlers; `_discover` imports all their modules, sub-packages
# included, so that a handler exists whether or not `transforms.discover()` has run.
PACKAGES = ("torch2mlx.handlers", "torch2mlx.transforms")


def _discover() -> None:
    """Import every module of `PACKAGES` so its handlers register (adding one = adding a file).

    Done on the first `run`, not when this package is imported: the core (rewriter.py) imports
    this registry, and the handler modules import the core, so loading them at import time
    would run them against half-initialised core modules (tests/test_import_layers.py).
    """
    global _discovered
    for package in PACKAGES:
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, prefix=f"{package}."):
            importlib.import_module(info.name)
    _discovered = True
