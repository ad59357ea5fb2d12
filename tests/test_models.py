"""Model fixtures: convert the file, build both models, copy the torch weights, compare outputs in eval mode."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

from tests.model_support import ATOL, MODELS_DIR, assert_close, exec_source as _exec  # noqa: E402, F401


def _assert_close(actual, expected, where="output"):
    assert_close(actual, expected, channels_last_output=False, where=where)  # no layout change here


@dataclass(frozen=True)
class Case:
    file: str
    build: Callable[[dict], object]          # namespace -> model (same call for torch and MLX)
    inputs: Callable[[np.random.RandomState], tuple]
    expected_flags: frozenset = frozenset()  # warning rule ids the conversion is expected to leave


CASES = {
    "mlp": Case("mlp.py", lambda ns: ns["MLP"](12, 32, 5, dropout=0.2),
                lambda rng: (rng.standard_normal((4, 3, 4)).astype(np.float32),)),
    "gpt2": Case("gpt2.py", lambda ns: ns["GPT"](ns["GPTConfig"]()),
                 lambda rng: (rng.randint(0, 50, size=(2, 12)).astype(np.int64),)),
    "lstm_lm": Case("lstm_lm.py", lambda ns: ns["RNNModel"](40, 16, 24, 2, dropout=0.3),
                    lambda rng: (rng.randint(0, 40, size=(7, 3)).astype(np.int64),
                                 (rng.standard_normal((2, 3, 24)).astype(np.float32),
                                  rng.standard_normal((2, 3, 24)).astype(np.float32)))),
    "vae": Case("vae.py", lambda ns: ns["VAE"](784, 64, 8),
                lambda rng: (rng.random_sample((5, 1, 28, 28)).astype(np.float32),)),
    "rnn_cell_decoder": Case("rnn_cell_decoder.py", lambda ns: ns["CellDecoder"](30, 6, 8),
                             lambda rng: (rng.randint(0, 30, size=(3, 5)).astype(np.int64),
                                          rng.standard_normal((3, 8)).astype(np.float32))),
    "seq2seq_transformer": Case("seq2seq_transformer.py", lambda ns: ns["Seq2SeqTransformer"](2, 2, 16, 2, 40, 30),
                                lambda rng: (rng.randint(0, 40, size=(7, 3)).astype(np.int64),
                                             rng.randint(0, 30, size=(5, 3)).astype(np.int64),
                                             np.array([[False] * 3] * 5 + [[False, True, True]] * 2).T.copy(),
                                             np.array([[False] * 3] * 4 + [[False, False, True]]).T.copy())),
    "transformer_decoder": Case("seq2seq_transformer.py", lambda ns: ns["DecoderOnly"](25),
                                lambda rng: (rng.randint(0, 25, size=(2, 6)).astype(np.int64),
                                             rng.standard_normal((2, 4, 16)).astype(np.float32))),
    "bert": Case("bert.py", lambda ns: ns["BertClassifier"](60),
                 lambda rng: (rng.randint(0, 60, size=(3, 9)).astype(np.int64),
                              rng.randint(0, 2, size=(3, 9)).astype(np.int64),
                              np.array([[1] * 9, [1] * 6 + [0] * 3, [1] * 4 + [0] * 5], dtype=np.int64))),
}


def _convert(case: Case):
    path = MODELS_DIR / case.file
    return path.read_text(encoding="utf-8"), convert_source(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_converts_with_only_the_expected_flags(name):
    case = CASES[name]
    _, result = _convert(case)
    flagged = {d.rule_id for d in result.diagnostics if d.severity.value != "info"}
    assert flagged == set(case.expected_flags), "\n".join(d.format() for d in result.diagnostics)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_matches_torch_with_loaded_weights(name):
    case = CASES[name]
    source, result = _convert(case)
    torch_ns, mlx_ns = _exec(source, f"torch_{name}"), _exec(result.code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = case.build(torch_ns).eval()
    mlx_model = case.build(mlx_ns)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    inputs = case.inputs(np.random.RandomState(0))
    with torch.no_grad():
        expected = torch_model(*_to(torch.from_numpy, inputs))
    _assert_close(mlx_model(*_to(mx.array, inputs)), expected)


def test_gpt2_tied_weights_are_one_mlx_parameter():
    """wte.weight = lm_head.weight: one MLX array serves both, so a change of it (a training step) moves both."""
    from mlx.utils import tree_flatten

    source, result = _convert(CASES["gpt2"])
    torch_ns, mlx_ns = _exec(source, "torch_gpt2_tie"), _exec(result.code, "mlx_gpt2_tie")
    torch_model, mlx_model = CASES["gpt2"].build(torch_ns).eval(), CASES["gpt2"].build(mlx_ns)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.tied == (("lm_head.weight", "transformer.wte.weight"),)
    assert not [k for k, _ in tree_flatten(mlx_model.parameters()) if "lm_head" in k]
    with torch.no_grad():
        torch_model.lm_head.weight.mul_(0.5)  # the shared parameter, seen through either name
    mlx_model.transformer["wte"].weight = mlx_model.transformer["wte"].weight * 0.5
    inputs = CASES["gpt2"].inputs(np.random.RandomState(1))
    with torch.no_grad():
        expected = torch_model(*_to(torch.from_numpy, inputs))
    _assert_close(mlx_model(*_to(mx.array, inputs)), expected)


def test_vae_loss_matches_torch():
    source, result = _convert(CASES["vae"])
    torch_ns, mlx_ns = _exec(source, "torch_vae"), _exec(result.code, "mlx_vae")
    rng = np.random.RandomState(2)
    recon, x = rng.random_sample((3, 784)).astype(np.float32), rng.random_sample((3, 784)).astype(np.float32)
    mu, logvar = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)
    args = (recon, x, mu, logvar)
    expected = torch_ns["loss_function"](*_to(torch.from_numpy, args))
    actual = mlx_ns["loss_function"](*_to(mx.array, args))
    np.testing.assert_allclose(np.array(actual), expected.numpy(), rtol=1e-4)


def _to(make, value):
    """numpy arrays (possibly inside tuples) -> framework arrays."""
    if isinstance(value, (tuple, list)):
        return type(value)(_to(make, v) for v in value)
    return make(value)


RECURRENT = [  # (torch constructor, input shape, initial state shapes or None)
    ("nn.LSTM(3, 5)", (6, 2, 3), None),
    ("nn.LSTM(3, 5, num_layers=2, batch_first=True)", (2, 6, 3), None),
    ("nn.LSTM(3, 5, 2, bidirectional=True)", (6, 2, 3), ((4, 2, 5), (4, 2, 5))),
    ("nn.LSTM(3, 5, bias=False)", (6, 3), None),
    ("nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True)", (2, 6, 3), None),
    ("nn.GRU(3, 5)", (6, 2, 3), (1, 2, 5)),
    ("nn.LSTM(3, 5)", (6, 3), ((1, 5), (1, 5))),
    ("nn.RNN(3, 5, nonlinearity='relu', num_layers=2)", (6, 2, 3), None),
    ("nn.RNN(3, 5)", (6, 2, 3), None),
    ("nn.LSTMCell(3, 5)", (2, 3), ((2, 5), (2, 5))),
    ("nn.LSTMCell(3, 5, bias=False)", (3,), None),
    ("nn.GRUCell(3, 5)", (2, 3), (2, 5)),
    ("nn.GRUCell(3, 5)", (3,), (5,)),
    ("nn.RNNCell(3, 5, nonlinearity='relu')", (2, 3), (2, 5)),
    ("nn.RNNCell(3, 5)", (2, 3), None),
]


@pytest.mark.parametrize("ctor,shape,state", RECURRENT, ids=[r[0] for r in RECURRENT])
def test_recurrent_layer_matches_torch(ctor, shape, state):
    source = f"import torch\nimport torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source)
    assert not result.flagged, result.code
    torch.manual_seed(0)
    torch_layer = _exec(source, "torch_rnn")["build"]().eval()
    mlx_layer = _exec(result.code, "mlx_rnn")["build"]()
    mlx_layer.eval()
    load_torch_weights(mlx_layer, torch_layer.state_dict())
    rng = np.random.RandomState(1)
    x = rng.standard_normal(shape).astype(np.float32)
    args = (x,)
    if state is not None:
        shapes = state if isinstance(state[0], tuple) else [state]
        states = tuple(rng.standard_normal(s).astype(np.float32) for s in shapes)
        args = (x, states if len(states) == 2 else states[0])
    with torch.no_grad():
        expected = torch_layer(*_to(torch.from_numpy, args))
    _assert_close(mlx_layer(*_to(mx.array, args)), expected)


ATTENTION = [  # (torch constructor, call arguments as source, batch_first)
    ("nn.MultiheadAttention(8, 2)", "x, x, x", False),
    ("nn.MultiheadAttention(8, 2, batch_first=True)", "x, x, x, need_weights=True, average_attn_weights=False", True),
    ("nn.MultiheadAttention(8, 2, bias=False, batch_first=True)", "x, x, x, attn_mask=causal", True),
    ("nn.MultiheadAttention(8, 4, batch_first=True)", "x, x, x, key_padding_mask=pad, attn_mask=bias_mask", True),
    ("nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True)", "x, src_mask=causal", True),
    ("nn.TransformerEncoderLayer(8, 2, 16, 0.0, 'gelu', 1e-6)", "x, src_key_padding_mask=pad", False),
    ("nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)",
     "x, x[:, :3] * 2, tgt_mask=causal, memory_key_padding_mask=pad[:, :3]", True),
    ("nn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True)", "x, x * 0.5, memory_mask=bias_mask", False),
    ("nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 2, nn.LayerNorm(8))",
     "x, x + 1, tgt_mask=causal, tgt_key_padding_mask=pad", True),
    ("nn.Transformer(8, 2, 1, 2, 16, batch_first=True)",
     "x, x[:, :4], tgt_mask=nn.Transformer.generate_square_subsequent_mask(4), src_key_padding_mask=pad,"
     " memory_key_padding_mask=pad", True),
]


@pytest.mark.parametrize("ctor,call,batch_first", ATTENTION, ids=[a[0] + " " + a[1] for a in ATTENTION])
def test_attention_layer_matches_torch(ctor, call, batch_first):
    source = (
        "import torch\nimport torch.nn as nn\n\n\n"
        f"def build():\n    return {ctor}\n\n\n"
        f"def run(layer, x: torch.Tensor, causal: torch.Tensor, pad: torch.Tensor, bias_mask: torch.Tensor):\n"
        f"    return layer({call})\n"
    )
    result = convert_source(source)
    assert not result.flagged, result.code
    torch.manual_seed(0)
    torch_ns, mlx_ns = _exec(source, "torch_attn"), _exec(result.code, "mlx_attn")
    torch_layer, mlx_layer = torch_ns["build"]().eval(), mlx_ns["build"]()
    mlx_layer.eval()
    load_torch_weights(mlx_layer, torch_layer.state_dict())
    rng = np.random.RandomState(3)
    x = rng.standard_normal((2, 5, 8) if batch_first else (5, 2, 8)).astype(np.float32)
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    pad = np.array([[False] * 5, [False] * 3 + [True] * 2])
    bias_mask = rng.standard_normal((5, 5)).astype(np.float32)
    args = (x, causal, pad, bias_mask)
    with torch.no_grad():
        expected = torch_ns["run"](torch_layer, *_to(torch.from_numpy, args))
    _assert_close(mlx_ns["run"](mlx_layer, *_to(mx.array, args)), expected)


def test_verify_model_passes_on_fixtures_and_fails_when_outputs_differ():
    from torch2mlx.verify_model import verify_model

    mlp = (MODELS_DIR / "mlp.py").read_text(encoding="utf-8")
    check = verify_model(mlp, "MLP", "12, 16, 3", ["2,12"])
    assert check.passed and check.max_abs_error < 1e-4 and check.summary().startswith("PASS"), check.summary()
    lstm = (MODELS_DIR / "lstm_lm.py").read_text(encoding="utf-8").replace("def forward(self, input, hidden):",
                                                                           "def forward(self, input, hidden=None):")
    assert verify_model(lstm, "RNNModel", "30, 8, 12, 2", ["int:0:30:5,2"]).passed
    noisy = mlp.replace("return F.log_softmax(self.head(h), dim=-1)", "return self.head(h) + torch.rand(3) + 1")
    failed = verify_model(noisy, "MLP", "12, 16, 3", ["2,12"])
    assert not failed.passed and failed.problem is None and failed.summary().startswith("FAIL")
    wrong_input = verify_model(mlp, "MLP", "12, 16, 3", ["2,13"])
    assert not wrong_input.passed and "torch forward fails" in wrong_input.problem
