"""Op-heavy fixture programs: convert with no flag, then agree with torch numerically."""
from pathlib import Path

import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, make_inputs, to_numpy

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "ops").glob("*.py"))


def _load(source: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(source, name, "exec"), namespace)  # noqa: S102 - our own fixtures
    return namespace


def _cases():
    for path in FIXTURES:
        cases = _load(path.read_text(), str(path))["CASES"]
        for fn in cases:
            yield pytest.param(path, fn, id=f"{path.stem}.{fn}")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_converts_cleanly(path):
    result = convert_source(path.read_text(), str(path))
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code


@pytest.mark.parametrize("path,fn", list(_cases()))
def test_fixture_matches_torch(path, fn):
    import mlx.core as mx
    import torch

    source = path.read_text()
    torch_ns = _load(source, str(path))
    mlx_ns = _load(convert_source(source, str(path)).code, f"{path} (mlx)")
    inputs = make_inputs(torch_ns["CASES"][fn])
    t_args = {k: torch.from_numpy(v) if hasattr(v, "dtype") else v for k, v in inputs.items()}
    m_args = {k: mx.array(v) if hasattr(v, "dtype") else v for k, v in inputs.items()}
    expected = to_numpy(torch_ns[fn](**t_args))
    actual = to_numpy(mlx_ns[fn](**m_args))
    problem = compare(expected, actual)
    assert problem is None, problem
