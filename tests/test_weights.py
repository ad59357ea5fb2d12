"""load_torch_weights: names and layouts from the MLX model's tree; clear errors; parity after loading."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from torch2mlx import WeightLoadError, load_torch_weights  # noqa: E402


def _close(mlx_out, torch_out, atol=1e-5):
    np.testing.assert_allclose(np.array(mlx_out), torch_out.detach().numpy(), rtol=1e-4, atol=atol)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(2)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(8, 3)})
        self.register_buffer("shift", torch.randn(3))

    def forward(self, x):
        h = self.seq(x)
        for b in self.blocks:
            h = b(h)
        return self.heads["a"](h) + self.shift


class MlxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.blocks = [nn.Linear(8, 8) for _ in range(2)]
        self.heads = {"a": nn.Linear(8, 3)}
        self.shift = mx.zeros(3)
        self.freeze(keys=["shift"], recurse=False)

    def __call__(self, x):
        h = self.seq(x)
        for b in self.blocks:
            h = b(h)
        return self.heads["a"](h) + self.shift


def test_sequential_lists_dicts_and_buffers_load_and_match():
    tm, mm = TorchNet().eval(), MlxNet()
    report = load_torch_weights(mm, tm.state_dict())
    assert report.ok and len(report.loaded) == len(tm.state_dict())
    x = np.random.randn(2, 4).astype(np.float32)
    _close(mm(mx.array(x)), tm(torch.from_numpy(x)))
    # the buffer loaded but stays untrained
    assert "shift" not in dict(__import__("mlx.utils").utils.tree_flatten(mm.trainable_parameters()))


def test_numpy_state_dict_and_dtype_cast():
    tm, mm = TorchNet(), MlxNet()
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in tm.state_dict().items()}
    load_torch_weights(mm, sd)
    assert mm.seq.layers[0].weight.dtype == mx.float32
    np.testing.assert_allclose(np.array(mm.seq.layers[0].weight), sd["seq.0.weight"], rtol=1e-6)


def test_root_sequential_names():
    tm = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    mm = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    load_torch_weights(mm, tm.state_dict())
    x = np.random.randn(5, 3).astype(np.float32)
    _close(mm(mx.array(x)), tm(torch.from_numpy(x)))


def test_errors_list_missing_unexpected_and_mismatched():
    sd = TorchNet().state_dict()
    sd.pop("blocks.1.bias")
    sd["extra.weight"] = torch.zeros(2)
    sd["heads.a.weight"] = torch.zeros(3, 7)
    with pytest.raises(WeightLoadError) as info:
        load_torch_weights(MlxNet(), sd)
    msg = str(info.value)
    assert "blocks.1.bias" in msg and "extra.weight" in msg and "heads.a.weight (torch (3, 7) vs MLX (3, 8))" in msg


def test_not_strict_reports_and_loads_the_rest():
    tm, mm = TorchNet(), MlxNet()
    sd = tm.state_dict()
    sd.pop("shift")
    report = load_torch_weights(mm, sd, strict=False)
    assert report.missing == ("shift",) and not report.unexpected
    np.testing.assert_allclose(np.array(mm.heads["a"].bias), sd["heads.a.bias"].numpy())
    np.testing.assert_array_equal(np.array(mm.shift), np.zeros(3))


def test_strict_failure_changes_nothing():
    mm = MlxNet()
    before = np.array(mm.seq.layers[0].weight)
    sd = TorchNet().state_dict()
    sd.pop("shift")
    with pytest.raises(WeightLoadError):
        load_torch_weights(mm, sd)
    np.testing.assert_array_equal(np.array(mm.seq.layers[0].weight), before)


def test_batchnorm_running_stats_and_num_batches_tracked():
    tm = torch.nn.BatchNorm1d(4)
    tm.train()
    tm(torch.randn(16, 4) * 3 + 1)
    tm.eval()
    mm = nn.BatchNorm(4)
    load_torch_weights(mm, tm.state_dict())  # num_batches_tracked is dropped, running stats load
    mm.eval()
    x = np.random.randn(3, 4).astype(np.float32)
    _close(mm(mx.array(x)), tm(torch.from_numpy(x)))


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_kernels_become_channels_last(dims):
    tconv = getattr(torch.nn, f"Conv{dims}d")(3, 5, 3, padding=1)
    mconv = getattr(nn, f"Conv{dims}d")(3, 5, 3, padding=1)
    load_torch_weights(mconv, tconv.state_dict())
    x = np.random.randn(2, 3, *([6] * dims)).astype(np.float32)
    out = np.moveaxis(np.array(mconv(mx.array(np.moveaxis(x, 1, -1)))), -1, 1)
    np.testing.assert_allclose(out, tconv(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_conv_transpose_kernel():
    tconv = torch.nn.ConvTranspose2d(4, 6, 3, stride=2)
    mconv = nn.ConvTranspose2d(4, 6, 3, stride=2)
    load_torch_weights(mconv, tconv.state_dict())
    x = np.random.randn(2, 4, 5, 5).astype(np.float32)
    out = np.moveaxis(np.array(mconv(mx.array(np.moveaxis(x, 1, -1)))), -1, 1)
    np.testing.assert_allclose(out, tconv(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_bilinear_weight_is_swapped():
    tm, mm = torch.nn.Bilinear(3, 4, 5), nn.Bilinear(3, 4, 5)
    load_torch_weights(mm, tm.state_dict())
    a, b = np.random.randn(2, 3).astype(np.float32), np.random.randn(2, 4).astype(np.float32)
    _close(mm(mx.array(a), mx.array(b)), tm(torch.from_numpy(a), torch.from_numpy(b)))


class _TiedTorch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(7, 4)
        self.head = torch.nn.Linear(4, 7, bias=False)
        self.wte.weight = self.head.weight


class _TiedMlx(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(7, 4)


def test_tied_duplicate_key_is_reported_not_unexpected():
    tm, mm = _TiedTorch(), _TiedMlx()
    report = load_torch_weights(mm, tm.state_dict())  # strict: the shared tensor under a second key is fine
    assert report.ok and report.tied == (("head.weight", "wte.weight"),)
    np.testing.assert_array_equal(np.array(mm.wte.weight), tm.head.weight.detach().numpy())


def test_tied_duplicate_survives_torch_save(tmp_path):
    tm, mm = _TiedTorch(), _TiedMlx()
    torch.save(tm.state_dict(), tmp_path / "ckpt.pt")
    report = load_torch_weights(mm, torch.load(tmp_path / "ckpt.pt"))
    assert report.tied == (("head.weight", "wte.weight"),)


def test_equal_but_separate_tensor_is_still_unexpected():
    tm, mm = _TiedTorch(), _TiedMlx()
    state = {"wte.weight": tm.wte.weight.detach(), "head.weight": tm.wte.weight.detach().clone()}
    with pytest.raises(WeightLoadError, match="unexpected in the state_dict: head.weight"):
        load_torch_weights(mm, state)
    view = tm.wte.weight.detach().t()  # same memory, another view: not the same tensor
    report = load_torch_weights(mm, {"wte.weight": tm.wte.weight.detach(), "head.weight": view}, strict=False)
    assert report.unexpected == ("head.weight",) and report.tied == ()


def test_numpy_tied_duplicate():
    array = np.random.randn(7, 4).astype(np.float32)
    report = load_torch_weights(_TiedMlx(), {"wte.weight": array, "head.weight": array})
    assert report.tied == (("head.weight", "wte.weight"),)
    with pytest.raises(WeightLoadError):
        load_torch_weights(_TiedMlx(), {"wte.weight": array, "head.weight": array.copy()})
