"""`--hub transformers`: a modeling file's transformers machinery from torch2mlx's MLX stand-ins.

Each stand-in is checked against transformers itself (run with torch here); a model written the way transformers'
modeling files are (tests/data/hub/modeling_tiny.py) is converted with the option, imported in a process where
torch cannot be imported, loaded with torch's state_dict and compared with torch.
"""
import json
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from torch2mlx import convert_source
from torch2mlx.cli import main
from torch2mlx.config import ConfigError, load
from torch2mlx.hub import KEPT, PROVIDED, RULE_ID, output_classes

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
mx = pytest.importorskip("mlx.core")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_CPU_SHIM = ROOT.parent / "shared" / "realcode"  # torchvision's CUDA wheel on CPU torch (transformers imports it)
if (_CPU_SHIM / "torchvision_on_cpu_torch.py").is_file():
    sys.path.insert(0, str(_CPU_SHIM))
    import torchvision_on_cpu_torch  # noqa: F401,E402
TINY = HERE / "data" / "hub" / "modeling_tiny.py"
ATOL = RTOL = 1e-5


def _hub():
    import torch2mlx.hub.transformers as hub

    return hub


def _config(**extra):
    from transformers.models.llama.configuration_llama import LlamaConfig

    cfg = LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      hidden_act="gelu_new", **extra)
    cfg._attn_implementation = "eager"
    return cfg


# ---------------------------------------------------------------- the stand-ins against transformers


def test_every_provided_name_exists_in_the_stand_ins():
    hub = _hub()
    for module, names in PROVIDED.items():
        for name in names:
            assert getattr(hub, name, None) is not None, f"{module}.{name}"
    assert {"BaseModelOutputWithPast", "CausalLMOutputWithPast", "SequenceClassifierOutputWithPast"} <= output_classes()
    for module, names in KEPT.items():  # kept names are transformers' own: they must import without torch
        assert names.isdisjoint(PROVIDED.get(module, ())), module


def test_kept_names_import_without_torch():
    pairs = [(f"transformers.{m}" if m else "transformers", n) for m, names in KEPT.items() for n in sorted(names)]
    script = textwrap.dedent(f"""
        import importlib, sys
        for name in ("torch", "torchvision", "torchaudio"):
            sys.modules[name] = None
        bad = []
        for module, name in {pairs!r}:
            try:
                getattr(importlib.import_module(module), name)
            except Exception as exc:
                bad.append(f"{{module}}.{{name}}: {{exc}}")
        print("BAD" if bad else "OK", bad)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.startswith("OK"), done.stdout + done.stderr


def test_activations_match_transformers():
    from transformers.activations import ACT2FN as TORCH_ACT2FN

    hub = _hub()
    x = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32) * 4
    for name in hub.ACT2FN:
        expected = TORCH_ACT2FN[name](torch.from_numpy(x)).numpy()
        actual = np.array(hub.ACT2FN[name](mx.array(x)))
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    with pytest.raises(KeyError):
        hub.ACT2FN["no_such_activation"]


@pytest.mark.parametrize("kind", ["causal", "sliding", "bidirectional"])
@pytest.mark.parametrize("padded", [False, True])
def test_masks_match_transformers_eager(kind, padded):
    from transformers import masking_utils

    hub = _hub()
    cfg = _config(sliding_window=3)
    embeds = np.zeros((2, 6, 16), np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], np.int64) if padded else None
    name = {"causal": "create_causal_mask", "sliding": "create_sliding_window_causal_mask",
            "bidirectional": "create_bidirectional_mask"}[kind]
    kwargs = {} if kind == "bidirectional" else {"past_key_values": None}
    expected = getattr(masking_utils, name)(config=cfg, inputs_embeds=torch.from_numpy(embeds),
                                            attention_mask=None if mask is None else torch.from_numpy(mask), **kwargs)
    actual = getattr(hub, name)(config=cfg, inputs_embeds=mx.array(embeds),
                                attention_mask=None if mask is None else mx.array(mask), **kwargs)
    if expected is None:
        assert actual is None
        return
    expected = expected.numpy()
    actual = np.array(actual)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual == 0, expected == 0)  # the same positions attended
    np.testing.assert_array_equal(actual, expected)


def test_output_classes_have_transformers_fields_and_tuple_order():
    import transformers.modeling_outputs as outputs

    hub = _hub()
    for name in ("BaseModelOutputWithPast", "CausalLMOutputWithPast", "Seq2SeqLMOutput", "ImageClassifierOutput"):
        assert [f.name for f in fields(getattr(hub, name))] == [f.name for f in fields(getattr(outputs, name))]
    out = hub.CausalLMOutputWithPast(logits=mx.ones((1, 2)), past_key_values=None)
    assert out[0] is out.logits and out.to_tuple() == (out.logits,)  # ModelOutput skips None, as in transformers


def test_what_the_stand_ins_do_not_provide_raises():
    hub = _hub()
    cfg = _config()
    cfg.output_hidden_states = True

    class Model:
        config = cfg

        @hub.capture_outputs
        def forward(self, **kwargs):
            return hub.BaseModelOutputWithPast(last_hidden_state=mx.zeros((1,)))

    with pytest.raises(NotImplementedError):
        Model().forward()
    with pytest.raises(NotImplementedError):
        hub.ALL_ATTENTION_FUNCTIONS.get_interface("flash_attention_2", None)
    with pytest.raises(NotImplementedError):
        hub.ROPE_INIT_FUNCTIONS["yarn"]
    with pytest.raises(NotImplementedError):  # packed sequences: position ids that restart
        hub.create_causal_mask(cfg, mx.zeros((1, 4, 16)), None, None, position_ids=mx.array([[0, 1, 0, 1]]))


def test_initialization_writes_into_the_module_array():
    import mlx.nn as nn

    hub = _hub()
    layer = nn.Linear(3, 4)
    hub.initialization.constant_(layer.weight, 0.5)
    hub.initialization.zeros_(layer.bias)
    np.testing.assert_array_equal(np.array(layer.weight), np.full((4, 3), 0.5, np.float32))
    np.testing.assert_array_equal(np.array(layer.bias), np.zeros(4, np.float32))


# ---------------------------------------------------------------- the conversion


def test_imports_are_mapped_kept_or_flagged():
    src = textwrap.dedent("""\
        import torch
        from transformers.activations import ACT2FN
        from transformers.utils import auto_docstring, logging
        from transformers.backbone_utils import BackboneMixin
        from transformers.modeling_utils import PreTrainedModel
        from transformers.models.whisper.generation_whisper import WhisperGenerationMixin


        class Net(PreTrainedModel, WhisperGenerationMixin):
            def forward(self, x: torch.Tensor):
                return torch.relu(x)
        """)
    result = convert_source(src, "pkg/modeling_net.py", hub=("transformers",))
    code = result.code
    assert "from torch2mlx.hub.transformers import ACT2FN\n" in code
    assert "from torch2mlx.hub.transformers import auto_docstring\nfrom transformers.utils import logging\n" in code
    assert f"# torch2mlx: {RULE_ID}: BackboneMixin from transformers.backbone_utils" in code
    assert "from torch2mlx.hub.transformers import GenerationMixin as WhisperGenerationMixin\n" in code
    assert "def __call__(self, x: mx.array)" in code  # PreTrainedModel is an nn.Module base for the conversion
    flagged = [d for d in result.diagnostics if d.severity.value != "info"]
    assert [(d.rule_id, d.line) for d in flagged] == [(RULE_ID, 4)]
    assert convert_source(code, "pkg/modeling_net.py", hub=("transformers",)).code == code  # idempotent
    without = convert_source(src, "pkg/modeling_net.py")
    assert "torch2mlx.hub" not in without.code and "def forward" in without.code


def test_transformers_initialization_converts_as_torch_nn_init():
    src = textwrap.dedent("""\
        import torch
        from torch import nn
        from transformers import initialization as init
        from transformers.modeling_utils import PreTrainedModel


        class Net(PreTrainedModel):
            def __init__(self, config):
                super().__init__(config)
                self.proj = nn.Linear(4, 4)

            def _init_weights(self, module):
                if isinstance(module, nn.Linear):
                    init.zeros_(module.bias)
                    init.normal_(module.weight, mean=0.0, std=0.02)
        """)
    result = convert_source(src, "pkg/modeling_net.py", hub=("transformers",))
    assert [d for d in result.diagnostics if d.severity.value != "info"] == []
    assert "module.bias = mx.zeros_like(module.bias)" in result.code
    again = convert_source(result.code, "pkg/modeling_net.py", hub=("transformers",))
    assert again.code == result.code and not again.diagnostics  # the stand-ins' import gives the same facts


def test_cli_and_configuration(tmp_path):
    src = tmp_path / "modeling_net.py"
    src.write_text("import torch\nfrom transformers.activations import ACT2FN\n\n\ndef f(x: torch.Tensor):\n"
                   "    return ACT2FN['gelu'](x)\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["convert", str(src), "--no-cache", "--isolated", "--hub", "transformers"])
    assert out.exit_code == 0, out.output
    assert "from torch2mlx.hub.transformers import ACT2FN" in out.output
    (tmp_path / "torch2mlx.toml").write_text('hub = ["transformers"]\n', encoding="utf-8")
    out = CliRunner().invoke(main, ["convert", str(src), "--no-cache"])
    assert out.exit_code == 0 and "torch2mlx.hub.transformers" in out.output, out.output
    (tmp_path / "torch2mlx.toml").write_text('hub = ["diffusers"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown hub 'diffusers'"):
        load(tmp_path / "torch2mlx.toml")


# ---------------------------------------------------------------- a transformers-style model, torch blocked


def _torch_side(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("modeling_tiny_torch", TINY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # transformers' auto_docstring reads the class's source file
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    cfg = _config(pad_token_id=0)
    ids = np.array([[5, 9, 3, 7, 2, 0], [4, 8, 1, 6, 0, 0]], np.int64)  # right-padded
    mask = (ids != 0).astype(np.int64)
    results = {}
    for name in ("TinyForCausalLM",):  # (the Generic heads build transformers' own base model through AutoModel)
        model = getattr(module, name)(cfg).eval()
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        logits = out.logits.numpy()
        np.savez(tmp_path / f"{name}.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
        np.save(tmp_path / f"{name}.expected.npy", logits)
        results[name] = logits.shape
    np.save(tmp_path / "ids.npy", ids)
    return results


def test_transformers_style_model_matches_torch_with_torch_blocked(tmp_path):
    result = convert_source(TINY.read_text(encoding="utf-8"), str(TINY), hub=("transformers",))
    assert [d.format() for d in result.diagnostics if d.severity.value != "info"] == []
    (tmp_path / "modeling_tiny.py").write_text(result.code, encoding="utf-8")
    shapes = _torch_side(tmp_path)
    script = textwrap.dedent(f"""
        import json, sys
        for name in ("torch", "torchvision", "torchaudio", "functorch"):
            sys.modules[name] = None
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import mlx.core as mx
        from transformers.models.llama.configuration_llama import LlamaConfig
        from torch2mlx import load_torch_weights
        import modeling_tiny
        cfg = LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, hidden_act="gelu_new", pad_token_id=0)
        ids = np.load({str(tmp_path / "ids.npy")!r})
        report = {{}}
        for name in ("TinyForCausalLM",):
            model = getattr(modeling_tiny, name)(cfg)
            model.eval()
            state = dict(np.load({str(tmp_path)!r} + f"/{{name}}.npz"))
            load_torch_weights(model, state)
            out = model(input_ids=mx.array(ids), attention_mask=mx.array((ids != 0).astype(np.int64)))
            expected = np.load({str(tmp_path)!r} + f"/{{name}}.expected.npy")
            actual = np.array(out.logits)
            report[name] = [list(actual.shape), float(np.abs(actual - expected).max())]
        print(json.dumps(report))
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name, shape in shapes.items():
        assert tuple(report[name][0]) == tuple(shape), name
        assert report[name][1] <= 1e-4, (name, report[name][1])


@pytest.mark.parametrize("filled", [0, 4])
def test_causal_mask_after_a_cache_matches_transformers(filled):
    from transformers import masking_utils
    from transformers.cache_utils import DynamicCache

    hub = _hub()
    cfg = _config()
    theirs, ours = DynamicCache(config=cfg), hub.DynamicCache(config=cfg)
    if filled:
        kv = np.random.default_rng(0).normal(size=(1, 2, filled, 8)).astype(np.float32)
        for layer in range(cfg.num_hidden_layers):
            theirs.update(torch.from_numpy(kv), torch.from_numpy(kv), layer)
            ours.update(mx.array(kv), mx.array(kv), layer)
    assert ours.get_seq_length() == theirs.get_seq_length() == filled
    embeds = np.zeros((1, 2, 16), np.float32)
    expected = masking_utils.create_causal_mask(config=cfg, inputs_embeds=torch.from_numpy(embeds),
                                                attention_mask=None, past_key_values=theirs)
    actual = hub.create_causal_mask(config=cfg, inputs_embeds=mx.array(embeds), attention_mask=None,
                                    past_key_values=ours)
    np.testing.assert_array_equal(np.array(actual), expected.numpy())
    new = np.ones((1, 2, 2, 8), np.float32)
    keys, _ = ours.update(mx.array(new), mx.array(new), 0)
    their_keys, _ = theirs.update(torch.from_numpy(new), torch.from_numpy(new), 0)
    np.testing.assert_array_equal(np.array(keys), their_keys.numpy())
