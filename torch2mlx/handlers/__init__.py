"""Python handlers for the few rules a template cannot express.

A rule names its handler (`handler: tensor_to`); each handler is a small function in
this package, registered by name, that returns the MLX expression and the MLX module
aliases it uses, or raises `Flag` to leave the call in place.
"""
from __future__ import annotations

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


def _discover() -> None:
    """Import every module of this package so its handlers register (adding one = adding a file).

    Done on the first `run`, not when this package is imported: the core (rewriter.py) imports
    this registry, and the handler modules import the core, so loading them at import time
    would run them against half-initialised core modules (tests/test_import_layers.py).
    """
    global _discovered
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True
