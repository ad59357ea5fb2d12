"""Forward speed of each converted model fixture vs torch, on the CPU (a benchmark, not a test).

    .venv/bin/python bench/bench_models.py [--repeat 20] [--large]

Builds each fixture in torch and, converted, in MLX with the same weights (load_torch_weights),
checks the outputs agree, then times eval-mode forward passes (median of --repeat runs after
warm-up, the two frameworks taking turns; MLX forced with mx.eval). Figures go to docs/models.md
by hand.
"""
from __future__ import annotations

import argparse

from common import SPECS, assert_close, build_pair, flatten, interleaved_times, median_ms


def main() -> None:
    import mlx.core as mx
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--large", action="store_true", help="larger batches and sequences (common.SPECS)")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | torch ms | MLX ms | MLX / torch |\n|---|---|---|---|")
    for name in sorted(SPECS):
        pair = build_pair(name, opts.large)
        with torch.no_grad():
            expected = pair.torch_model(*pair.torch_inputs)
        assert_close(pair.mlx_model(*pair.mlx_inputs), expected, name, to_channels_last=SPECS[name].channels_last)

        def run_torch(pair=pair):
            with torch.no_grad():
                pair.torch_model(*pair.torch_inputs)

        def run_mlx(pair=pair):
            mx.eval(flatten(pair.mlx_model(*pair.mlx_inputs)))

        times = interleaved_times({"torch": run_torch, "mlx": run_mlx}, opts.repeat)
        t, m = median_ms(times["torch"]), median_ms(times["mlx"])
        print(f"| {name} | {t:.2f} | {m:.2f} | {m / t:.1f} |")


if __name__ == "__main__":
    main()
