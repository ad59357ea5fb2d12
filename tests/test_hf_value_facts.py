"""Value facts met in transformers' modeling files (issue 12): the attention function called through a local
name, `x.reshape(*input_shape, -1)` and transformers' `init.copy_`. Each idiom is written as the modeling files
write it, converted, and run under torch and MLX."""
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from torch2mlx import convert_source

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
_CPU_SHIM = Path(__file__).resolve().parent.parent.parent / "shared" / "realcode"  # torchvision's CUDA wheel on CPU torch
if (_CPU_SHIM / "torchvision_on_cpu_torch.py").is_file():
    sys.path.insert(0, str(_CPU_SHIM))
    import torchvision_on_cpu_torch  # noqa: F401,E402

ATTENTION = """\
import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def eager_attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float, **kwargs):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class Attention(nn.Module):
    def __init__(self, impl):
        super().__init__()
        self.impl = impl
        self.head_dim = 4
        self.q_proj = nn.Linear(8, 8)

    def forward(self, hidden_states: torch.Tensor):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
{bind}
        attn_output, attn_weights = attention_interface(self, q, q, q, scaling=0.5)
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return attn_output
"""
# transformers 5's form, and the older one (`[impl]` raises in the stand-in: only the eager function runs)
MODERN = ("        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.impl, eager_attention_forward)")
OLDER = ("        attention_interface = eager_attention_forward\n"
         "        if self.impl != \"eager\":\n"
         "            attention_interface = ALL_ATTENTION_FUNCTIONS[self.impl]")


def _flags(result):
    return [d.format() for d in result.diagnostics if d.severity.value != "info"]


def _run_both(src: str, converted: str, x: np.ndarray) -> None:
    """The torch class (eager attention: transformers' own interface returns the given function for "eager")
    against the converted class with the torch module's weights."""
    torch_ns: dict = {}
    exec(compile(src, "modeling_t.py", "exec"), torch_ns)
    torch.manual_seed(0)
    ref = torch_ns["Attention"]("eager").eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    mlx_ns: dict = {}
    exec(compile(converted, "modeling_t_mlx.py", "exec"), mlx_ns)
    model = mlx_ns["Attention"]("eager")
    model.q_proj.weight = mx.array(ref.q_proj.weight.detach().numpy())
    model.q_proj.bias = mx.array(ref.q_proj.bias.detach().numpy())
    actual = np.array(model(mx.array(x)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bind", [MODERN, OLDER], ids=["get_interface", "subscript"])
def test_attention_function_through_a_local_name_returns_tensors(bind):
    pytest.importorskip("transformers")
    src = ATTENTION.format(bind=bind)
    result = convert_source(src, "models/t/modeling_t.py", hub=("transformers",))
    assert _flags(result) == []
    assert "attn_output = mx.reshape(attn_output, (*input_shape, -1))" in result.code
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    _run_both(src, result.code, x)
    again = convert_source(result.code, "models/t/modeling_t.py", hub=("transformers",))
    assert again.code == result.code


def test_a_plain_alias_of_a_function_of_the_file_needs_no_hub():
    src = ATTENTION.format(bind="        attention_interface = eager_attention_forward").replace(
        "from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS\n", "")
    result = convert_source(src, "m.py")
    assert _flags(result) == []
    _run_both(src, result.code, np.random.default_rng(1).standard_normal((1, 5, 8)).astype(np.float32))


@pytest.mark.parametrize("bind, elsewhere", [
    # without the hub, transformers' own interface may return sdpa / flash functions: not followed
    (MODERN, ""),
    # the name is bound to something else in another function: no alias anywhere
    ("        attention_interface = eager_attention_forward",
     "\n\ndef other(attention_interface):\n    return attention_interface\n"),
    ("        attention_interface = eager_attention_forward",
     "\n\ndef other():\n    attention_interface = print\n    return attention_interface\n"),
    # a function of the file bound twice at module level may be either
    ("        attention_interface = eager_attention_forward", "\n\neager_attention_forward = print\n"),
])
def test_what_is_not_known_to_be_a_function_of_the_file_stays_flagged(bind, elsewhere):
    src = ATTENTION.format(bind=bind) + elsewhere
    result = convert_source(src, "models/t/modeling_t.py")  # no hub
    # not taken for a tensor: the call stays as written (mx.array.reshape means the same on whatever it returns,
    # transforms/facts/array_methods.py), never translated as a tensor's
    assert "attn_output = attn_output.reshape(*input_shape, -1)" in result.code, result.code
    assert "mx.reshape(attn_output" not in result.code, result.code


def test_reshape_with_a_starred_shape_and_sizes_is_one_tuple():
    src = textwrap.dedent("""\
        import torch


        def f(x: torch.Tensor, y: torch.Tensor):
            input_shape = y.shape[:-1]
            a = x.reshape(*input_shape, -1)
            b = x.view(2, *input_shape[1:], 3, -1)
            return a, b
        """)
    result = convert_source(src)
    assert _flags(result) == []
    assert "mx.reshape(x, (2, *input_shape[1:], 3, -1))" in result.code
    x = np.random.default_rng(2).standard_normal((2, 3, 12)).astype(np.float32)
    y = np.zeros((2, 3, 5), np.float32)
    ns_t: dict = {}
    exec(src, ns_t)
    ns_m: dict = {}
    exec(result.code, ns_m)
    for e, a in zip(ns_t["f"](torch.from_numpy(x), torch.from_numpy(y)), ns_m["f"](mx.array(x), mx.array(y))):
        assert tuple(a.shape) == tuple(e.shape)
        np.testing.assert_array_equal(np.array(a), e.numpy())


def test_reshape_with_a_starred_shape_and_a_dtype_is_flagged():
    result = convert_source("import torch\n\n\ndef f(x: torch.Tensor, s):\n    return x.view(*s, torch.int32)\n")
    assert any("reinterprets the bits" in f for f in _flags(result))


COPY = """\
import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_utils import PreTrainedModel


class Net(PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.proj = nn.Linear(4, 6)
        self.register_buffer("position_ids", torch.zeros(1, 5, dtype=torch.long))

    def _init_weights(self, module):
        if isinstance(module, Net):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.copy_(module.proj.bias, torch.ones(6, dtype=torch.float64))
"""


def test_transformers_init_copy_writes_the_value_torch_copies():
    transformers = pytest.importorskip("transformers")
    result = convert_source(COPY, "models/net/modeling_net.py", hub=("transformers",))
    assert _flags(result) == []
    assert "module.position_ids = mx.broadcast_to(" in result.code
    # what transformers' init.copy_ leaves in the tensors, against the converted statements' values
    from transformers import initialization as init

    position_ids, bias = torch.zeros(1, 5, dtype=torch.long), torch.zeros(6)
    init.copy_(position_ids, torch.arange(position_ids.shape[-1]).expand((1, -1)))
    init.copy_(bias, torch.ones(6, dtype=torch.float64))
    assert transformers is not None

    class Holder:
        pass

    module = Holder()
    module.position_ids, module.proj = mx.zeros((1, 5), dtype=mx.int64), Holder()
    module.proj.bias = mx.zeros((6,))
    body = [line.strip() for line in result.code.splitlines() if line.strip().startswith("module.")]
    assert len(body) == 2
    for line in body:
        exec(line, {"mx": mx, "module": module})
    for actual, expected in ((module.position_ids, position_ids), (module.proj.bias, bias)):
        assert tuple(actual.shape) == tuple(expected.shape)
        assert np.array(actual).dtype == expected.numpy().dtype
        np.testing.assert_array_equal(np.array(actual), expected.numpy())


def test_init_copy_of_a_conv_weight_and_torch_nn_init_copy_stay_flagged():
    conv = COPY.replace("nn.Linear(4, 6)", "nn.Conv2d(4, 6, 3)").replace(
        "init.copy_(module.proj.bias, torch.ones(6, dtype=torch.float64))", "init.copy_(module.proj.weight, w)")
    result = convert_source(conv, "models/net/modeling_net.py", hub=("transformers",))
    assert any("layout" in f for f in _flags(result))
    # torch.nn.init has no copy_: only transformers' initialization is known to mean t.copy_(src)
    plain = COPY.replace("from transformers import initialization as init\n", "from torch.nn import init\n")
    result = convert_source(plain, "models/net/modeling_net.py", hub=("transformers",))
    assert any("copy_" in f for f in _flags(result))


def test_use_experts_implementation_runs_the_class_forward_and_sets_transformers_attributes():
    pytest.importorskip("transformers")
    from transformers.integrations import use_experts_implementation as theirs
    from transformers.models.mixtral.configuration_mixtral import MixtralConfig

    import mlx.nn as mnn

    from torch2mlx.hub.transformers import HubNotSupported, use_experts_implementation

    class TorchExperts(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * self.w

    class MlxExperts(mnn.Module):
        def __init__(self, config):
            super().__init__()
            self.w = mx.ones((2,))

        def __call__(self, x):
            return x * self.w

    config = MixtralConfig(hidden_size=8, intermediate_size=16, num_local_experts=2)
    config._experts_implementation = "eager"
    ours = use_experts_implementation(has_bias=True)(MlxExperts)(config)
    reference = theirs(has_bias=True)(TorchExperts)(config)
    for name in ("has_gate", "has_bias", "has_post_expert_norm", "is_transposed", "is_concatenated", "_is_expert_parallel"):
        assert getattr(ours, name) == getattr(reference, name), name
    x = np.arange(2, dtype=np.float32)
    np.testing.assert_array_equal(np.array(ours(mx.array(x))), reference(torch.from_numpy(x)).detach().numpy())
    assert use_experts_implementation(MlxExperts) is MlxExperts  # the bare decorator
    config._experts_implementation = "deepgemm"
    with pytest.raises(HubNotSupported):
        use_experts_implementation(MlxExperts)(config)


CONFIG = """\
import torch
from torch import nn
from .configuration_clip import CLIPTextConfig


class Embeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
{body}
        self.register_buffer("position_ids", torch.arange({arg}).expand((1, -1)), persistent=False)

    def forward(self, x: torch.Tensor):
        return x + self.position_ids
"""


def test_an_int_field_of_a_strict_transformers_config_gives_arange_torch_dtype():
    pytest.importorskip("transformers")
    from transformers.models.clip.configuration_clip import CLIPTextConfig

    src = CONFIG.format(body="        self.n = 1", arg="config.max_position_embeddings")
    result = convert_source(src, "models/clip/modeling_clip.py", hub=("transformers",))
    assert _flags(result) == []
    assert "mx.arange(config.max_position_embeddings, dtype=mx.int64)" in result.code
    config = CLIPTextConfig(max_position_embeddings=7)
    for code, array in ((src, torch.zeros(2, 7, dtype=torch.long)), (result.code, mx.zeros((2, 7), dtype=mx.int64))):
        ns: dict = {"__name__": "models.clip.modeling_clip"}
        code = code.replace("from .configuration_clip import CLIPTextConfig",
                            "from transformers.models.clip.configuration_clip import CLIPTextConfig")
        exec(compile(code, "modeling_clip.py", "exec"), ns)
        out = ns["Embeddings"](config)(array)
        assert str(out.dtype).endswith("int64") and tuple(out.shape) == (2, 7)
        np.testing.assert_array_equal(np.array(out), np.broadcast_to(np.arange(7), (2, 7)))


@pytest.mark.parametrize("body, arg", [
    ("        self.n = 1", "config.hidden_act"),                   # annotated str: not an int
    ("        config = config.text_config", "config.max_position_embeddings"),  # rebound: another object
    ("        self.n = 1", "config.attention_dropout"),           # annotated `float | int`
])
def test_what_a_config_does_not_show_to_be_an_int_stays_flagged(body, arg):
    pytest.importorskip("transformers")
    result = convert_source(CONFIG.format(body=body, arg=arg), "models/clip/modeling_clip.py", hub=("transformers",))
    assert any("arange" in f for f in _flags(result)), result.code


BUILT = """\
import torch
from torch import nn
from .configuration_clip import CLIPTextConfig


class Embeddings(nn.Module):
    def __init__(self, config, scale=1):
        super().__init__()
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(self, x: torch.Tensor):
        return x + self.position_ids


class Model(nn.Module):
    def __init__(self, config: CLIPTextConfig{extra_param}):
        super().__init__()
        self.embeddings = Embeddings(config)
{extra}
    def forward(self, x: torch.Tensor):
        return self.embeddings(x)

    def _init_weights(self, module):
        if isinstance(module, Embeddings):
            pass
"""


def test_init_parameter_given_a_config_at_every_construction_holds_it():
    pytest.importorskip("transformers")
    from transformers.models.clip.configuration_clip import CLIPTextConfig

    src = BUILT.format(extra_param="", extra="")
    result = convert_source(src, "models/clip/modeling_clip.py", hub=("transformers",))
    assert _flags(result) == []
    assert "mx.arange(config.max_position_embeddings, dtype=mx.int64)" in result.code
    config = CLIPTextConfig(max_position_embeddings=5)
    outs = []
    for code, x in ((src, torch.zeros(1, 5, dtype=torch.long)), (result.code, mx.zeros((1, 5), dtype=mx.int64))):
        code = code.replace("from .configuration_clip", "from transformers.models.clip.configuration_clip")
        ns: dict = {}
        exec(compile(code, "modeling_clip.py", "exec"), ns)
        outs.append(ns["Model"](config)(x))
    assert str(outs[1].dtype).endswith(str(outs[0].dtype).rsplit(".", 1)[-1])
    np.testing.assert_array_equal(np.array(outs[1]), outs[0].numpy())


@pytest.mark.parametrize("extra_param, extra", [
    (", other=None", "        self.more = Embeddings(other)\n"),          # another construction passes anything
    ("", "        self.kinds = {'embeddings': Embeddings}\n"),           # the class as a value: built elsewhere
])
def test_a_construction_not_known_to_pass_a_config_leaves_the_parameter_unknown(extra_param, extra):
    pytest.importorskip("transformers")
    result = convert_source(BUILT.format(extra_param=extra_param, extra=extra), "models/clip/modeling_clip.py",
                            hub=("transformers",))
    assert any("arange" in f for f in _flags(result)), result.code


DEVICE = """\
import torch


def helper(n, device):
    return torch.zeros(n, device=device)


def positions(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, n: int):
    device = input_ids.device if input_ids is not None else inputs_embeds.device
    mask = torch.ones(2, n, device=device)
{use}
    return torch.arange(n, device=device) + mask
"""


def test_a_device_only_passed_to_torch_functions_is_mlx_default_device():
    src = DEVICE.format(use="")
    result = convert_source(src)
    assert _flags(result) == []
    assert "device = mx.default_device()" in result.code
    ns_t: dict = {}
    exec(src, ns_t)
    ns_m: dict = {}
    exec(result.code, ns_m)
    expected = ns_t["positions"](torch.zeros(2, 4, dtype=torch.long), None, 4)
    actual = ns_m["positions"](mx.zeros((2, 4), dtype=mx.int64), None, 4)
    assert tuple(actual.shape) == tuple(expected.shape) and str(actual.dtype).endswith(str(expected.dtype)[6:])
    np.testing.assert_array_equal(np.array(actual), expected.numpy())


@pytest.mark.parametrize("use", [
    "    mask = mask + helper(n, device)",                      # into the file's own function
    "    mask = mask if device.type == 'cpu' else mask * 2",    # the device inspected
    "    device = torch.device('cpu')",                          # bound otherwise too
])
def test_a_device_used_otherwise_stays_flagged(use):
    result = convert_source(DEVICE.format(use=use))
    assert any("device" in f for f in _flags(result)), result.code


ATTRS = """\
import torch
from torch import nn
from .configuration_clip import CLIPTextConfig


class Embeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_positions = (self.embed_dim // 8) ** 2 + 1
{extra}
        self.class_embedding = nn.Parameter(torch.randn(self.embed_dim))
        self.register_buffer("position_ids", torch.arange(self.num_positions).expand((1, -1)), persistent=False)

    def forward(self, x: torch.Tensor):
        return x + self.position_ids
"""


def test_self_attributes_every_store_of_which_is_an_int():
    pytest.importorskip("transformers")
    from transformers.models.clip.configuration_clip import CLIPTextConfig

    src = ATTRS.format(extra="")
    result = convert_source(src, "models/clip/modeling_clip.py", hub=("transformers",))
    assert _flags(result) == []
    assert "mx.arange(self.num_positions, dtype=mx.int64)" in result.code
    assert "mx.random.normal((self.embed_dim,))" in result.code
    config = CLIPTextConfig(hidden_size=16)  # (16 // 8) ** 2 + 1 = 5 positions
    outs = []
    for code, x in ((src, torch.zeros(1, 5, dtype=torch.long)), (result.code, mx.zeros((1, 5), dtype=mx.int64))):
        code = code.replace("from .configuration_clip", "from transformers.models.clip.configuration_clip")
        ns: dict = {}
        exec(compile(code, "modeling_clip.py", "exec"), ns)
        module = ns["Embeddings"](config)
        assert tuple(module.class_embedding.shape) == (16,)
        outs.append(module(x))
    assert str(outs[1].dtype).endswith(str(outs[0].dtype).rsplit(".", 1)[-1])
    np.testing.assert_array_equal(np.array(outs[1]), outs[0].numpy())


@pytest.mark.parametrize("extra", [
    "        if config.hidden_act == 'gelu':\n            self.num_positions = config.hidden_size / 2",  # a float store
    "        other = self\n        other.num_positions = 7",       # stored through another name
    "        self.num_positions = self.num_positions ** -1",        # a negative power: a float
])
def test_an_attribute_not_always_an_int_stays_flagged(extra):
    pytest.importorskip("transformers")
    result = convert_source(ATTRS.format(extra=extra), "models/clip/modeling_clip.py", hub=("transformers",))
    assert any("arange" in f for f in _flags(result)), result.code


def test_one_size_known_to_be_an_int_is_a_one_element_shape():
    src = "import torch\n\n\ndef f(x: torch.Tensor):\n    s = x.shape[0]\n    return torch.zeros(s) + torch.rand(s) * 0\n"
    result = convert_source(src)
    assert _flags(result) == []
    assert "(s,)" in result.code
    ns_t: dict = {}
    exec(src, ns_t)
    ns_m: dict = {}
    exec(result.code, ns_m)
    expected, actual = ns_t["f"](torch.zeros(3, 2)), ns_m["f"](mx.zeros((3, 2)))
    assert tuple(actual.shape) == tuple(expected.shape) == (3,) and actual.dtype == mx.float32
    np.testing.assert_array_equal(np.array(actual), expected.numpy())


STATIC = """\
import torch
from torch import nn


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.padding_idx = 1

    def forward(self, input_ids: torch.Tensor):
        return self.create_position_ids_from_input_ids(input_ids, self.padding_idx)

    @staticmethod
    def create_position_ids_from_input_ids(input_ids, padding_idx, past_key_values_length=0):
        mask = input_ids.ne(padding_idx).int()
        incremental_indices = (torch.cumsum(mask, dim=1).type_as(mask) + past_key_values_length) * mask
        return incremental_indices.long() + padding_idx
{extra}"""


def test_a_staticmethod_called_on_self_with_tensors_has_tensor_parameters():
    src = STATIC.format(extra="")
    result = convert_source(src)
    assert _flags(result) == []
    ids = np.array([[0, 1, 5, 7, 1], [3, 3, 1, 1, 1]], np.int64)
    ns_t: dict = {}
    exec(src, ns_t)
    ns_m: dict = {}
    exec(result.code, ns_m)
    expected = ns_t["Embeddings"]()(torch.from_numpy(ids))
    actual = ns_m["Embeddings"]()(mx.array(ids))
    assert tuple(actual.shape) == tuple(expected.shape) and actual.dtype == mx.int64
    np.testing.assert_array_equal(np.array(actual), expected.numpy())


def test_a_staticmethod_also_called_otherwise_gets_no_parameter_facts():
    src = STATIC.format(extra="\n\ndef positions(ids):\n    return Embeddings.create_position_ids_from_input_ids(ids, 0)\n")
    result = convert_source(src)
    assert any(".ne()" in f for f in _flags(result)), result.code


def test_init_copy_into_a_computed_target_stays_as_written_and_converts_to_itself():
    # gemma4 / mimo_v2_flash: init.copy_(getattr(module, f"{layer_type}_inv_freq"), curr_inv_freq)
    src = COPY.replace("init.copy_(module.proj.bias, torch.ones(6, dtype=torch.float64))",
                       "init.copy_(getattr(module, 'position_ids'), torch.ones(6, dtype=torch.float64))")
    result = convert_source(src, "models/net/modeling_net.py", hub=("transformers",))
    assert "init.copy_(getattr(module, 'position_ids')" in result.code
    assert any("copy_" in f for f in _flags(result))
    again = convert_source(result.code, "models/net/modeling_net.py", hub=("transformers",))
    assert again.code == result.code
