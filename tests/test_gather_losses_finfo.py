"""gather/scatter with a smaller index, class-weighted losses, finfo/iinfo attributes: converted code
run against torch over many shapes and arguments (the rule examples check one case each)."""
import itertools

import numpy as np
import pytest

from torch2mlx import convert_source

SOURCE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


def run_gather(x: torch.Tensor, dim: int, i: torch.Tensor):
    return torch.gather(x, dim, i)


def run_scatter(x: torch.Tensor, dim: int, i: torch.Tensor, s: torch.Tensor):
    return x.scatter(dim, i, s)


def run_scatter_value(x: torch.Tensor, dim: int, i: torch.Tensor):
    return x.scatter(dim, i, 2.5)


def run_scatter_add(x: torch.Tensor, dim: int, i: torch.Tensor, s: torch.Tensor):
    return torch.scatter_add(x, dim, i, s)


def ce_mean(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, ii: int, ls: float):
    return F.cross_entropy(x, t, weight=w, ignore_index=ii, label_smoothing=ls)


def ce_sum(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, ii: int, ls: float):
    return F.cross_entropy(x, t, w, ignore_index=ii, reduction="sum", label_smoothing=ls)


def ce_none(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, ii: int, ls: float):
    return F.cross_entropy(x, t, w, ignore_index=ii, reduction="none", label_smoothing=ls)


def nll_mean(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, ii: int):
    return F.nll_loss(x, t, w, ignore_index=ii)


def nll_none(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, ii: int):
    return F.nll_loss(x, t, w, ignore_index=ii, reduction="none")


def bce_modules(p: torch.Tensor, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, pw: torch.Tensor):
    crits = [nn.BCELoss(w), nn.BCEWithLogitsLoss(w, reduction="sum"), nn.BCEWithLogitsLoss(pos_weight=pw),
             nn.BCEWithLogitsLoss(weight=w, pos_weight=pw, reduction="none")]
    return [crits[0](p, y)] + [c(x, y) for c in crits[1:]]


def infos():
    out = []
    for d in (torch.float16, torch.bfloat16, torch.float32):
        out += [torch.finfo(d).bits, torch.finfo(d).eps, torch.finfo(d).max, torch.finfo(d).min,
                torch.finfo(d).tiny, torch.finfo(d).smallest_normal, torch.finfo(d).resolution]
    for d in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        out += [torch.iinfo(d).bits, torch.iinfo(d).max, torch.iinfo(d).min]
    return out
'''


@pytest.fixture(scope="module")
def both():
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE, "helpers.py")
    flagged = [d.format() for d in result.diagnostics if d.severity.value != "info"]
    assert not flagged, flagged
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code
    for name in ("gather", "scatter_positions", "class_weighted_cross_entropy", "class_weighted_nll_loss"):
        assert result.code.count(f"def {name}(") == 1  # each helper once per file
    torch_ns: dict = {}
    exec(compile(SOURCE, "helpers.py", "exec"), torch_ns)  # noqa: S102 - our own source
    mlx_ns: dict = {}
    exec(compile(result.code, "helpers_mlx.py", "exec"), mlx_ns)  # noqa: S102 - its conversion

    def run(name, *args):
        t_args = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
        m_args = [mx.array(a) if isinstance(a, np.ndarray) else a for a in args]
        return torch_ns[name](*t_args), mlx_ns[name](*m_args)

    return run


def _same(expected, actual):
    if isinstance(expected, list):
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            _same(e, a)
        return
    if not hasattr(expected, "numpy"):
        assert expected == actual and type(expected) is type(actual), (expected, actual)
        return
    e, a = expected.numpy(), np.array(actual)
    assert e.shape == a.shape, (e.shape, a.shape)
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_gather_and_scatter_with_smaller_index(both):
    rng = np.random.default_rng(0)
    for _ in range(150):
        nd = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(1, 5, nd))
        dim = int(rng.integers(-nd, nd))
        axis = dim % nd
        ishape = tuple(int(rng.integers(1, 6)) if a == axis else int(rng.integers(1, n + 1)) for a, n in enumerate(shape))
        x = rng.standard_normal(shape).astype(np.float32)
        i = rng.integers(0, shape[axis], ishape)
        s = rng.standard_normal(tuple(n + int(rng.integers(0, 2)) for n in ishape)).astype(np.float32)
        _same(*both("run_gather", x, dim, i))
        _same(*both("run_scatter_add", x, dim, i, s))
        if ishape[axis] <= shape[axis]:  # scatter: distinct positions along dim (torch leaves repeats unspecified)
            rows = [rng.permutation(shape[axis])[:ishape[axis]] for _ in range(int(np.prod(ishape)) // ishape[axis])]
            others = tuple(n for a, n in enumerate(ishape) if a != axis)
            unique = np.moveaxis(np.array(rows).reshape(others + (ishape[axis],)), -1, axis)
            _same(*both("run_scatter", x, dim, unique, s))
            _same(*both("run_scatter_value", x, dim, unique))


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (5,), (2, 3, 2, 2)])
def test_class_weighted_losses(both, shape):
    rng = np.random.default_rng(1)
    classes = shape[1] if len(shape) > 1 else shape[0]
    tshape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    for weighted, ignore, smoothing in itertools.product([False, True], [-100, 1], [0.0, 0.3]):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.uniform(0.1, 3.0, classes).astype(np.float32) if weighted else None
        t = rng.integers(0, classes, tshape)
        if tshape:
            t.flat[0] = ignore
        for fn in ("ce_mean", "ce_sum", "ce_none"):
            _same(*both(fn, x, t, w, ignore, smoothing))
        if ignore == -100:  # probability targets (ignore_index must stay the default in torch)
            p = rng.uniform(0, 1, shape).astype(np.float32)
            p /= p.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
            for fn in ("ce_mean", "ce_sum", "ce_none"):
                _same(*both(fn, x, p, w, ignore, smoothing))
        logp = (x - np.log(np.exp(x).sum(axis=1 if len(shape) > 1 else 0, keepdims=True))).astype(np.float32)
        for fn in ("nll_mean", "nll_none"):
            _same(*both(fn, logp, t, w, ignore))


def test_binary_cross_entropy_weights_broadcast(both):
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 0.99, (3, 4)).astype(np.float32)
    x = (rng.standard_normal((3, 4)) * 5).astype(np.float32)
    y = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    _same(*both("bce_modules", p, x, y, rng.uniform(0, 2, (4,)).astype(np.float32), rng.uniform(0, 3, (4,)).astype(np.float32)))
    _same(*both("bce_modules", p, x, y, rng.uniform(0, 2, (3, 1)).astype(np.float32), rng.uniform(0, 3, (3, 4)).astype(np.float32)))


def test_every_finfo_and_iinfo_attribute(both):
    _same(*both("infos"))


@pytest.mark.parametrize("code", [
    "fi = torch.finfo(x.dtype)\n    return fi.eps",
    "return torch.finfo(x.dtype).dtype == 'float32'",
    "return torch.iinfo(torch.int32).dtype",
    "return str(torch.finfo(torch.float32))",
])
def test_finfo_left_in_place_where_attributes_differ(code):
    result = convert_source(f"import torch\n\ndef f(x: torch.Tensor):\n    {code}\n")
    assert any(d.rule_id in ("torch.finfo", "torch.iinfo") and d.severity.value == "warning" for d in result.diagnostics)


def test_helper_name_taken_gets_a_fresh_one():
    # issue 14: the file's own `gather` keeps its name; the helper is written and called as gather_1
    source = "import torch\n\ndef gather(a):\n    return a\n\ndef f(x: torch.Tensor, i: torch.Tensor):\n    return x.gather(1, i)\n"
    result = convert_source(source)
    assert not any(d.rule_id == "torch.gather" for d in result.diagnostics)
    assert "def gather(a):" in result.code and "return gather_1(x, 1, i)" in result.code
