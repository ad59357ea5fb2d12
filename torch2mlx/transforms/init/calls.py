"""`nn.init.<fn>_(target, ...)`: the MLX expression of the new value, or why there is none.

Shape-agnostic initialisers translate for any target. Those whose spread depends on the tensor's
fans (kaiming_*) or on its axes (orthogonal_, eye_) translate only where the target's MLX layout
is known to give torch's numbers: see `layers` for how the layer is known.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from torch2mlx.binding import signature_of
from torch2mlx.transforms.init.layers import PARAMETER
from torch2mlx.transforms.init.literals import calculate_gain, literal_number, string_literal

_LINEAR_LIKE = frozenset({"torch.nn.Linear", "torch.nn.Embedding"})
# MLX weight = torch weight with the input channels moved last: fan_in = prod(shape[1:]) and
# fan_out = shape[0] * receptive field in both layouts; ConvTranspose (torch (in, out/g, k..),
# MLX (out, k.., in/g)) is the exception and is never in these sets
_SAME_FANS = _LINEAR_LIKE | {"torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d"}
_CHAIN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

Result = tuple  # (MLX expression text or None, why it is not translated or None)


def _fixed(template: str) -> Callable:
    return lambda args, classes: (template.format(**args), None)


def _kaiming(initializer: str) -> Callable:
    def build(args: dict, classes: Optional[frozenset]) -> Result:
        mode, nonlinearity = string_literal(args["mode"]), string_literal(args["nonlinearity"])
        a = literal_number(args["a"])
        if mode not in ("fan_in", "fan_out") or nonlinearity is None or a is None:
            return None, "mode=, nonlinearity= and a= must be literals (the gain is computed at conversion time)"
        gain = calculate_gain(nonlinearity, a)
        if gain is None:
            return None, f"torch has no gain for nonlinearity {nonlinearity!r}"
        why = _fan_problem(mode, classes)
        if why is not None:
            return None, why
        t = args["t"]
        return f"nn.init.{initializer}({t}.dtype)({t}, mode={mode!r}, gain={gain!r})", None
    return build


def _fan_problem(mode: str, classes: Optional[frozenset]) -> Optional[str]:
    if classes is None:
        return ("cannot tell which layer this weight belongs to, and MLX computes ConvTranspose fans from its "
                "(out, k.., in) layout; narrow the module with isinstance(...) or initialise a named layer")
    if classes <= _SAME_FANS or (classes == {PARAMETER} and mode == "fan_in"):
        return None
    if classes == {PARAMETER}:
        return "fan_out of an N-D parameter is shape[0] * prod(shape[2:]) in torch but shape[0] * prod(shape[1:-1]) in MLX"
    return f"MLX's fans for {', '.join(sorted(c.rsplit('.', 1)[-1] for c in classes - _SAME_FANS))} weights differ from torch's (layout)"


def _trunc_normal(args: dict, classes: Optional[frozenset]) -> Result:
    values = {k: literal_number(args[k]) for k in ("mean", "std", "a", "b")}
    t = args["t"]
    if all(v is not None for v in values.values()):
        if values["std"] <= 0:
            return None, "std= must be positive"
        low = (values["a"] - values["mean"]) / values["std"]
        high = (values["b"] - values["mean"]) / values["std"]
        sample = f"mx.random.truncated_normal({low!r}, {high!r}, {t}.shape, dtype={t}.dtype)"
        scaled = sample if values["std"] == 1 else f"{args['std']} * {sample}"
        return (scaled if values["mean"] == 0 else f"{args['mean']} + {scaled}"), None
    if values["std"] is not None and values["std"] <= 0:
        return None, "std= must be positive"
    # mean and std are read three times: an expression other than a literal or a name chain is
    # bound once, in torch's argument order, by an immediately called lambda
    # (vision_transformer.py: `trunc_normal_(w, std=math.sqrt(1 / fan_in))`)
    lifted = [k for k in ("mean", "std", "a", "b") if values[k] is None and not _CHAIN.match(args[k])]
    names = {k: f"{k}_" if k in lifted else args[k] for k in values}
    roots = {args[k].split(".")[0] for k in values if k not in lifted and values[k] is None} | {t.split(".")[0]}
    if roots & {names[k] for k in lifted}:
        return None, "an argument's name is taken by the generated lambda's parameters; assign it to another name"
    m, std = names["mean"], names["std"]
    if values["mean"] == 0:
        low, high = f"{names['a']} / {std}", f"{names['b']} / {std}"
    else:
        low, high = f"({names['a']} - {m}) / {std}", f"({names['b']} - {m}) / {std}"
    value = f"{std} * mx.random.truncated_normal({low}, {high}, {t}.shape, dtype={t}.dtype)"
    if values["mean"] != 0:
        value = f"{m} + {value}"
    if not lifted:
        return value, None
    parameters, arguments = ", ".join(names[k] for k in lifted), ", ".join(args[k] for k in lifted)
    return f"(lambda {parameters}: {value})({arguments})", None


def _orthogonal(args: dict, classes: Optional[frozenset]) -> Result:
    t = args["t"]
    if classes is not None and classes <= _LINEAR_LIKE:
        return f"nn.init.orthogonal({args['gain']}, {t}.dtype)({t})", None
    if classes is not None and classes <= _SAME_FANS:
        # rows = output channels in both layouts; the columns are permuted, which leaves the
        # distribution of a random orthogonal matrix unchanged
        return f"nn.init.orthogonal({args['gain']}, {t}.dtype)({t}.reshape({t}.shape[0], -1)).reshape({t}.shape)", None
    return None, "the weight's layer is not known to be Linear, Embedding or Conv (whose rows match torch's)"


def _eye(args: dict, classes: Optional[frozenset]) -> Result:
    t = args["t"]
    if classes is not None and classes <= _LINEAR_LIKE:
        return f"mx.eye({t}.shape[0], {t}.shape[1], dtype={t}.dtype)", None
    return None, "eye_ needs a 2-D tensor in torch's layout: only Linear and Embedding weights are known to be"


def _dirac(args: dict, classes: Optional[frozenset]) -> Result:
    return None, "MLX stores conv weights channels-last (out, k.., in): set the centre taps by hand"


# initialiser -> (parameter names after the tensor, defaults, builder(args, layer classes))
_TABLE: dict = {
    "zeros_": ((), {}, _fixed("mx.zeros_like({t})")),
    "ones_": ((), {}, _fixed("mx.ones_like({t})")),
    "constant_": (("val",), {}, _fixed("mx.full({t}.shape, {val}, dtype={t}.dtype)")),
    "normal_": (("mean", "std"), {"mean": "0.0", "std": "1.0"},
                _fixed("mx.random.normal({t}.shape, dtype={t}.dtype, loc={mean}, scale={std})")),
    "uniform_": (("a", "b"), {"a": "0.0", "b": "1.0"}, _fixed("mx.random.uniform({a}, {b}, {t}.shape, dtype={t}.dtype)")),
    # the spread depends on fan_in + fan_out only, the same in torch's and MLX's layouts of every
    # mapped layer (ConvTranspose swaps fan_in and fan_out, which leaves the sum alone)
    "xavier_uniform_": (("gain",), {"gain": "1.0"}, _fixed("nn.init.glorot_uniform({t}.dtype)({t}, {gain})")),
    "xavier_normal_": (("gain",), {"gain": "1.0"}, _fixed("nn.init.glorot_normal({t}.dtype)({t}, {gain})")),
    "kaiming_uniform_": (("a", "mode", "nonlinearity"), {"a": "0", "mode": "'fan_in'", "nonlinearity": "'leaky_relu'"},
                         _kaiming("he_uniform")),
    "kaiming_normal_": (("a", "mode", "nonlinearity"), {"a": "0", "mode": "'fan_in'", "nonlinearity": "'leaky_relu'"},
                        _kaiming("he_normal")),
    "trunc_normal_": (("mean", "std", "a", "b"), {"mean": "0.0", "std": "1.0", "a": "-2.0", "b": "2.0"}, _trunc_normal),
    "orthogonal_": (("gain",), {"gain": "1"}, _orthogonal),
    "eye_": ((), {}, _eye),
    "dirac_": (("groups",), {"groups": "1"}, _dirac),
}
# initialiser -> (its signature, the tensor first as `t`, builder)
INITS: dict = {name: (signature_of(("t", *params), defaults=defaults), build) for name, (params, defaults, build) in _TABLE.items()}
# torch's deprecated names without the underscore call the same functions
ALIASES = {name[:-1]: name for name in ("normal_", "uniform_", "constant_", "xavier_uniform_", "xavier_normal_",
                                        "kaiming_uniform_", "kaiming_normal_", "orthogonal_")}
