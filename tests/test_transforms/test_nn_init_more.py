"""nn-init beyond nn.init.{zeros_,normal_,...}: kaiming/trunc_normal/orthogonal/eye, Tensor-method initialisers,
self.apply(fn), layer classes in isinstance checks and `m.bias is None` (converted, then run under MLX).

Moment tolerances as in test_nn_init.py (6 standard errors; false failure ~1e-9).
"""
import math
import re
import textwrap

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
torch = pytest.importorskip("torch")

from torch2mlx import convert_source  # noqa: E402
from torch2mlx.table import load_default_table  # noqa: E402
from torch2mlx.transforms.init.classes import OPTIONAL_KEYS  # noqa: E402

HEADER = "import math\nimport torch\nimport torch.nn as nn\n\n\n"


def _convert(init_lines: str, layers: str = "self.m = nn.Linear(200, 300)", extra: str = ""):
    body = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            + textwrap.indent(textwrap.dedent(layers).strip(), " " * 8) + "\n"
            + textwrap.indent(textwrap.dedent(init_lines).strip(), " " * 8) + "\n"
            + textwrap.indent(textwrap.dedent(extra), "    "))
    return HEADER + body, convert_source(HEADER + body)


def _build(result, seed=0):
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, result.code
    assert convert_source(result.code).code == result.code
    namespace: dict = {"__name__": "init_more"}
    exec(compile(result.code, "<init>", "exec"), namespace)  # noqa: S102 - our own test code
    mx.random.seed(seed)
    return namespace["Net"]()


def _flags(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


LAYERS = {"Linear": "nn.Linear(200, 300)", "Conv2d": "nn.Conv2d(16, 24, 5)", "Conv1d": "nn.Conv1d(20, 30, 7)",
          "Embedding": "nn.Embedding(300, 200)"}


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("call, kind, mode, gain", [
    ("nn.init.kaiming_normal_(self.m.weight, mode='fan_out', nonlinearity='relu')", "normal", "fan_out", math.sqrt(2)),
    ("nn.init.kaiming_normal_(self.m.weight)", "normal", "fan_in", math.sqrt(2)),  # torch default: leaky_relu, a=0
    ("nn.init.kaiming_uniform_(self.m.weight, a=math.sqrt(5))", "uniform", "fan_in", math.sqrt(1 / 3)),
    ("nn.init.kaiming_uniform_(self.m.weight, mode='fan_out', nonlinearity='tanh')", "uniform", "fan_out", 5 / 3),
])
def test_kaiming_matches_torch_spread(layer, call, kind, mode, gain):
    source, result = _convert(call, f"self.m = {LAYERS[layer]}")
    w = np.array(_build(result).m.weight)
    tw = eval(LAYERS[layer], {"nn": torch.nn}).weight  # noqa: S307 - a literal from this file
    fan = torch.nn.init._calculate_fan_in_and_fan_out(tw)[0 if mode == "fan_in" else 1]
    assert gain == pytest.approx(torch.nn.init.calculate_gain(*(("leaky_relu", math.sqrt(5)) if "sqrt(5)" in call else
                                 ("tanh",) if "tanh" in call else ("relu",))))
    if kind == "normal":
        std = gain / math.sqrt(fan)
        assert abs(w.std() - std) < 6 * std / math.sqrt(2 * w.size) and abs(w.mean()) < 6 * std / math.sqrt(w.size)
    else:
        bound = gain * math.sqrt(3.0 / fan)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


@pytest.mark.parametrize("layers, call, why", [
    ("self.m = nn.ConvTranspose2d(8, 4, 3)", "nn.init.kaiming_normal_(self.m.weight)", "ConvTranspose2d"),
    ("self.m = nn.Linear(3, 4)\nw = self.m", "nn.init.kaiming_normal_(w.weight)", "cannot tell which layer"),
    ("self.p = nn.Parameter(torch.zeros(3, 4, 5))", "nn.init.kaiming_normal_(self.p, mode='fan_out')", "N-D parameter"),
    ("self.m = nn.Linear(3, 4)", "nn.init.kaiming_normal_(self.m.weight, nonlinearity=act)", "literals"),
    ("self.m = nn.Conv2d(3, 4, 3)", "nn.init.dirac_(self.m.weight)", "channels-last"),
    ("self.m = nn.Conv2d(3, 4, 3)", "nn.init.eye_(self.m.weight)", "2-D"),
    ("self.m = nn.ConvTranspose2d(3, 4, 3)", "nn.init.orthogonal_(self.m.weight)", "not known"),
])
def test_layout_dependent_inits_are_flagged_with_the_reason(layers, call, why):
    _, result = _convert(call, layers)
    flags = _flags(result)
    assert flags and any(why in d.message for d in flags), result.code
    assert "# torch2mlx: torch.nn.init." in result.code


def test_kaiming_fan_in_on_a_parameter_is_translated():
    _, result = _convert("nn.init.kaiming_uniform_(self.p)", "self.p = nn.Parameter(torch.zeros(40, 30, 5))")
    w = np.array(_build(result).p)
    bound = math.sqrt(2) * math.sqrt(3.0 / (30 * 5))  # torch: fan_in = size(1) * receptive field
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


@pytest.mark.parametrize("call, mean, std, a, b", [
    ("nn.init.trunc_normal_(self.m.weight, std=0.02)", 0.0, 0.02, -2.0, 2.0),
    ("nn.init.trunc_normal_(self.m.weight, mean=1.0, std=2.0, a=-1.0, b=3.0)", 1.0, 2.0, -1.0, 3.0),
    ("nn.init.trunc_normal_(self.m.weight, 0.5, 1.0, 0.0, 0.75)", 0.5, 1.0, 0.0, 0.75),
])
def test_trunc_normal_has_torch_bounds_and_moments(call, mean, std, a, b):
    _, result = _convert(call)
    w = np.array(_build(result).m.weight)
    reference = torch.nn.init.trunc_normal_(torch.empty(2_000_000), mean, std, a, b).numpy()  # large: ~exact moments
    assert w.min() >= a and w.max() <= b
    sigma = reference.std()
    assert abs(w.mean() - reference.mean()) < 6 * sigma / math.sqrt(w.size)
    assert abs(w.std() - sigma) < 6 * sigma / math.sqrt(w.size)  # a truncated normal's kurtosis is below 3


@pytest.mark.parametrize("layers, gain", [("self.m = nn.Linear(20, 30)", 1), ("self.m = nn.Linear(30, 20)", 2.0),
                                          ("self.m = nn.Conv2d(4, 6, 2)", 1)])
def test_orthogonal_is_orthogonal_as_in_torch(layers, gain):
    _, result = _convert(f"nn.init.orthogonal_(self.m.weight, gain={gain})", layers)
    w = np.array(_build(result).m.weight)
    rows = w.reshape(w.shape[0], -1)
    small = rows @ rows.T if rows.shape[0] <= rows.shape[1] else rows.T @ rows
    np.testing.assert_allclose(small, gain ** 2 * np.eye(small.shape[0]), atol=1e-5)


def test_eye_and_deprecated_aliases():
    _, result = _convert("nn.init.eye_(self.m.weight)\nnn.init.constant(self.m.bias, 0.5)", "self.m = nn.Linear(3, 5)")
    net = _build(result)
    np.testing.assert_array_equal(np.array(net.m.weight), torch.nn.init.eye_(torch.empty(5, 3)).numpy())
    np.testing.assert_array_equal(np.array(net.m.bias), np.full(5, 0.5, np.float32))


def test_tensor_method_initialisers():
    _, result = _convert("""
        self.a.weight.data.normal_(mean=0.5, std=0.02)
        self.a.bias.data.zero_()
        self.b.weight.data.fill_(0.25)
        self.b.bias.copy_(torch.arange(3))
        self.c.weight.data.uniform_(-0.1, 0.3)
    """, "self.a = nn.Linear(200, 300)\nself.b = nn.Linear(2, 3)\nself.c = nn.Linear(200, 300)")
    net = _build(result)
    w = np.array(net.a.weight)
    assert abs(w.mean() - 0.5) < 6 * 0.02 / math.sqrt(w.size) and abs(w.std() - 0.02) < 6 * 0.02 / math.sqrt(2 * w.size)
    np.testing.assert_array_equal(np.array(net.a.bias), np.zeros(300, np.float32))
    np.testing.assert_array_equal(np.array(net.b.weight), np.full((3, 2), 0.25, np.float32))
    np.testing.assert_array_equal(np.array(net.b.bias), np.arange(3, dtype=np.float32))
    assert net.b.bias.dtype == mx.float32
    u = np.array(net.c.weight)
    assert u.min() >= -0.1 and u.max() < 0.3 and abs(u.mean() - 0.1) < 6 * (0.4 / math.sqrt(12)) / math.sqrt(u.size)


@pytest.mark.parametrize("line, rule", [
    ("self.e.weight.data[self.e.padding_idx].zero_()", "inplace-op"),   # MLX Embedding has no padding_idx
    ("self.e.weight.data.normal_(0.0, 0.02, generator=None)", "torch.Tensor.normal_"),
    ("w = torch.empty(3)\nw.normal_()", "torch.Tensor.normal_"),
    ("self.e.weight.data.exponential_()", "torch.Tensor.exponential_"),
    ("x = self.e.weight.data.normal_()", "torch.Tensor.normal_"),
])
def test_untranslated_method_initialisers_are_flagged(line, rule):
    _, result = _convert(line, "self.e = nn.Embedding(5, 3, padding_idx=0)")
    assert any(d.rule_id == rule for d in _flags(result)), result.code


def test_apply_visits_every_module_children_first_like_torch():
    extra = """
    def _record(self, module):
        self.order.append(type(module).__name__)
        if isinstance(module, nn.Linear):
            module.weight.data.fill_(float(len(self.order)))
    """
    layers = """
        self.order = []
        self.a = nn.Linear(2, 2)
        self.body = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU()), nn.LayerNorm(3))
        self.z = nn.Embedding(4, 2)
    """
    source, result = _convert("self.apply(self._record)", layers, extra)
    assert "for module in reversed(self.modules()):" in result.code
    net = _build(result)
    namespace: dict = {}
    exec(compile(source, "<torch>", "exec"), namespace)  # noqa: S102
    reference = namespace["Net"]()
    assert net.order == reference.order
    np.testing.assert_array_equal(np.array(net.body.layers[1].layers[0].weight), reference.body[1][0].weight.detach().numpy())


@pytest.mark.parametrize("ctor, bias", [
    ("nn.Linear(2, 3, bias=False)", False), ("nn.Linear(2, 3)", True), ("nn.Conv2d(2, 3, 1, bias=False)", False),
    ("nn.Conv1d(2, 3, 1)", True), ("nn.ConvTranspose2d(2, 3, 1, bias=False)", False),
    ("nn.LayerNorm(3, elementwise_affine=False)", False), ("nn.LayerNorm(3)", True), ("nn.Embedding(3, 2)", None),
    ("nn.Bilinear(2, 3, 4, bias=False)", False), ("nn.BatchNorm1d(3, affine=False)", False), ("nn.BatchNorm2d(3)", True),
])
def test_bias_is_none_becomes_a_key_check_that_agrees_with_torch(ctor, bias):
    extra = """
    def check(self):
        return self.m.bias is not None, self.m.weight is None
    """
    source, result = _convert("pass", f"self.m = {ctor}", extra)
    assert '"bias" in self.m' in result.code and '"weight" not in self.m' in result.code
    net = _build(result)
    namespace: dict = {}
    exec(compile(source, "<torch>", "exec"), namespace)  # noqa: S102
    expected = namespace["Net"]().check() if bias is not None else (False, False)
    assert net.check() == expected


def test_bias_check_on_an_unknown_module_reads_the_bias_as_torch_would():
    # torch's layer built with bias=False has `bias = None`; MLX's has no attribute at all (since 5c92ebc)
    _, result = _convert("for m in self.modules():\n    if m.bias is not None:\n        nn.init.zeros_(m.bias)")
    assert 'getattr(m, "bias", None) is not None' in result.code
    assert "m.bias is not None" not in result.code


@pytest.mark.parametrize("check, flagged", [
    ("isinstance(m, (nn.Conv2d, nn.Linear))", False), ("type(m) is nn.Linear", False),
    ("isinstance(m, nn.BatchNorm2d)", True), ("isinstance(m, nn.LSTM)", True),
])
def test_isinstance_classes(check, flagged):
    _, result = _convert(f"for m in self.modules():\n    if {check}:\n        nn.init.zeros_(m.weight)")
    assert bool(_flags(result)) == flagged, result.code
    if not flagged:
        assert "torch" not in result.code.replace("torch2mlx", "")


def _constructor_classes() -> dict:
    """torch class -> MLX class its constructor rule builds (rules whose template starts `nn.X(`)."""
    found = {}
    for rule in load_default_table():
        for name in rule.functions:
            templates = [rule.mlx or ""] + [v.mlx for v in rule.variants]
            if rule.handler is not None:  # what the handler writes, as its examples show it
                templates += [e.mlx.split("=", 1)[-1] if e.mlx.startswith("out =") else e.mlx
                              for e in rule.examples if e.mlx]
            classes = {m.group(1) for t in templates for m in [re.match(r"\s*nn\.([A-Z]\w*)\(", t)] if m}
            if re.match(r"torch\.nn\.[A-Z]\w*$", name) and classes:
                found[name] = classes
    return found


def test_isinstance_class_rules_are_one_to_one_and_keep_subclassing():
    import mlx.nn as mnn

    built = _constructor_classes()
    class_rules = [r for r in load_default_table() if r.context == "annotation" and r.status != "manual"
                   and all(v.startswith("torch.nn.") for v in r.values)]
    assert class_rules
    for rule in class_rules:
        (torch_name,) = rule.values
        mlx_class = rule.mlx.split(".", 1)[1]
        assert built.get(torch_name) == {mlx_class}, f"{torch_name}'s constructor does not build nn.{mlx_class}"
        builders = sorted(t for t, classes in built.items() if mlx_class in classes)
        assert builders == [torch_name], f"nn.{mlx_class} is built by {builders}: isinstance would match them all"
        torch_cls, mlx_cls = getattr(torch.nn, torch_name.split(".")[-1]), getattr(mnn, mlx_class)
        for other, classes in built.items():  # isinstance(layer built from `other`, cls) agrees
            for c in classes:
                assert issubclass(getattr(mnn, c), mlx_cls) == issubclass(getattr(torch.nn, other.split(".")[-1]), torch_cls), (other, rule.id)


def test_optional_key_layers_have_exact_isinstance_or_constructor_rules():
    assert OPTIONAL_KEYS <= set(_constructor_classes())


def test_copy_into_a_conv_weight_is_flagged_not_silently_misplaced():
    """An MLX conv weight is (out, kH, kW, in): a torch-layout copy_ into it is wrong whenever the shapes line up."""
    from torch2mlx import convert_source

    source = ("import torch\nimport torch.nn as nn\nconv = nn.Conv2d(3, 3, 3)\nwith torch.no_grad():\n"
              "    conv.weight.copy_(torch.ones(3, 3, 3, 3))\n")
    result = convert_source(source)
    assert any(d.rule_id == "torch.Tensor.copy_" and d.line == 5 for d in result.diagnostics), result.code
