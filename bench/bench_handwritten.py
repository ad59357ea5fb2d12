"""Forward speed of each converted model fixture vs a hand-written MLX port of it (bench/handwritten/),
on the CPU (a benchmark, not a test).

    .venv/bin/python bench/bench_handwritten.py [--large] [--rounds 5] [--repeat 30] [--inner 3] [--only NAME ...]

For each fixture: build it in torch, convert it, load the torch weights into the converted model
(load_torch_weights) and into the port (its own `torch_weights` mapping), and check that the
converted model matches torch and the port matches the converted model (atol 1e-4) before timing.
Then time eval-mode forward passes (mx.eval of every output) of both, eagerly and under
mx.compile, the four taking turns sample by sample so that machine noise hits them alike. The whole
measurement runs --rounds times; the table gives medians over all samples with the interquartile
range, and the converted / hand-written ratio of each round, to show whether it is stable.
Figures go to docs/models.md ("Converted vs hand-written MLX") by hand.
"""
from __future__ import annotations

import argparse
import importlib
import statistics

from common import SPECS, assert_close, build_pair, flatten, interleaved_times, make, median_ms, spread_ms

VARIANTS = ("converted", "hand-written", "converted compiled", "hand-written compiled")


def build_port(name: str, state_dict: dict):
    """The hand-written port of fixture `name` with the torch weights, in eval mode."""
    import mlx.core as mx

    spec = SPECS[name]
    module = importlib.import_module(f"handwritten.{spec.file.removesuffix('.py')}")
    model = make(vars(module), spec)
    weights = getattr(module, spec.cls).torch_weights(state_dict)
    model.load_weights([(key, mx.array(value)) for key, value in weights.items()], strict=True)
    model.eval()
    return model


def checked_runners(name: str, large: bool) -> tuple[dict, str]:
    """The four forward functions of fixture `name` (after checking the outputs), and its input shapes."""
    import mlx.core as mx
    import torch

    pair = build_pair(name, large)
    port = build_port(name, pair.state_dict)
    with torch.no_grad():
        expected = pair.torch_model(*pair.torch_inputs)
    converted_out = pair.mlx_model(*pair.mlx_inputs)
    assert_close(converted_out, expected, f"{name}: converted vs torch", to_channels_last=SPECS[name].channels_last)
    assert_close(port(*pair.mlx_inputs), converted_out, f"{name}: hand-written vs converted")

    def runner(fn):
        return lambda: mx.eval(flatten(fn(*pair.mlx_inputs)))

    models = {"converted": pair.mlx_model, "hand-written": port}
    runners = {label: runner(model) for label, model in models.items()}
    for label, model in models.items():
        compiled = mx.compile(lambda *args, model=model: flatten(model(*args)))
        assert_close(compiled(*pair.mlx_inputs), converted_out, f"{name}: {label} compiled")
        runners[f"{label} compiled"] = runner(compiled)
    shapes = ", ".join("x".join(map(str, a.shape)) for a in flatten(pair.mlx_inputs))
    return runners, shapes


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="how many times to repeat the whole measurement")
    parser.add_argument("--repeat", type=int, default=30, help="timed samples per variant and round")
    parser.add_argument("--inner", type=int, default=3, help="forward passes per sample")
    parser.add_argument("--large", action="store_true", help="larger batches and sequences (common.SPECS)")
    parser.add_argument("--only", nargs="*", default=sorted(SPECS), choices=sorted(SPECS))
    opts = parser.parse_args()
    torch.set_num_threads(1)
    runners = {}
    shapes = {}
    for name in opts.only:
        runners[name], shapes[name] = checked_runners(name, opts.large)
    print(f"outputs checked: converted == torch, hand-written == converted (atol 1e-4) for {len(runners)} models")
    samples = {name: {v: [] for v in VARIANTS} for name in runners}
    ratios = {name: {"eager": [], "compiled": []} for name in runners}
    for _ in range(opts.rounds):
        for name, fns in runners.items():
            times = interleaved_times(fns, opts.repeat, opts.inner)
            for variant in VARIANTS:
                samples[name][variant] += times[variant]
            for mode, suffix in (("eager", ""), ("compiled", " compiled")):
                ratios[name][mode].append(median_ms(times[f"converted{suffix}"]) / median_ms(times[f"hand-written{suffix}"]))
    print(_table(samples, ratios, shapes))


def _table(samples: dict, ratios: dict, shapes: dict) -> str:
    lines = ["| model | MLX input | converted ms | hand-written ms | ratio (per round) "
             "| compiled: converted ms | hand-written ms | ratio (per round) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, by_variant in samples.items():
        cells = [name, shapes[name]]
        for mode, suffix in (("eager", ""), ("compiled", " compiled")):
            cells += [_ms(by_variant[f"converted{suffix}"]), _ms(by_variant[f"hand-written{suffix}"]),
                      f"{statistics.median(ratios[name][mode]):.2f} ("
                      + " / ".join(f"{r:.2f}" for r in ratios[name][mode]) + ")"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ms(samples: list[float]) -> str:
    q1, q3 = spread_ms(samples)
    return f"{median_ms(samples):.3f} ({q1:.3f}-{q3:.3f})"


if __name__ == "__main__":
    main()
