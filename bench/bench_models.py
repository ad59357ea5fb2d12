"""Forward speed of each converted model fixture vs torch, on the CPU (a benchmark, not a test).

    .venv/bin/python bench/bench_models.py [--repeat 20]

Builds each fixture in torch and, converted, in MLX with the same weights (load_torch_weights),
checks the outputs agree, then times eval-mode forward passes (median of --repeat runs after
warm-up; MLX forced with mx.eval). Figures go to docs/models.md by hand.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _time(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    import mlx.core as mx
    import torch
    from test_models import CASES, _convert, _exec, _flatten_outputs  # noqa: F401 - reuse the test's fixture table

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':10} {'torch ms':>10} {'mlx ms':>10} {'mlx/torch':>10}")
    for name, case in sorted(CASES.items()):
        source, result = _convert(case)
        torch_ns, mlx_ns = _exec(source, f"t_{name}"), _exec(result.code, f"m_{name}")
        torch.manual_seed(0)
        tm = case.build(torch_ns).eval()
        mm = case.build(mlx_ns)
        mm.eval()
        from torch2mlx import load_torch_weights

        load_torch_weights(mm, tm.state_dict())
        inputs = case.inputs(np.random.RandomState(0))
        t_in = _to(torch.from_numpy, inputs)
        m_in = _to(mx.array, inputs)

        def run_torch():
            with torch.no_grad():
                tm(*t_in)

        def run_mlx():
            mx.eval(_flatten_outputs(mm(*m_in)))

        t, m = _time(run_torch, opts.repeat), _time(run_mlx, opts.repeat)
        print(f"{name:10} {t * 1e3:10.3f} {m * 1e3:10.3f} {m / t:10.2f}")


def _to(make, value):
    if isinstance(value, (tuple, list)):
        return type(value)(_to(make, v) for v in value)
    return make(value)


if __name__ == "__main__":
    main()
