"""`torch2mlx verify` and `torch2mlx export-weights` on the model fixtures: exit codes and real parity."""
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx.cli import main  # noqa: E402
from torch2mlx.verify_model import build_converted_model, channels_last_layout  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"
MLP = str(MODELS_DIR / "mlp.py")
LENET = str(MODELS_DIR / "lenet.py")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("argv", [
    [MLP, "--model", "MLP", "--args", "12, 16, num_classes=3", "--input", "2,12"],
    [LENET, "--model", "LeNet", "--args", "10", "--input", "2,1,28,28"],
    [str(MODELS_DIR / "resnet_block.py"), "--model", "TinyResNet", "--args", "8, 5", "--input", "2,3,10,10"],
], ids=["mlp", "lenet-nchw-input", "resnet-nhwc-output"])
def test_verify_passes_on_fixtures(runner, argv):
    r = runner.invoke(main, ["verify", *argv])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("PASS: max abs error"), r.stdout


def test_verify_fails_when_the_outputs_differ(runner, tmp_path):
    noisy = tmp_path / "noisy.py"
    noisy.write_text(Path(MLP).read_text().replace("return F.log_softmax(self.head(h), dim=-1)",
                                                  "return self.head(h) + torch.rand(3) + 1"))
    r = runner.invoke(main, ["verify", str(noisy), "--model", "MLP", "--args", "12, 16, 3", "--input", "2,12"])
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("FAIL: max abs error"), r.stdout


@pytest.mark.parametrize("argv,message", [
    ([LENET, "--model", "Nope", "--input", "1,1,28,28"], "no class 'Nope'"),
    ([LENET, "--model", "LeNet", "--args", "10,,", "--input", "1,1,28,28"], "not Python call arguments"),
    ([LENET, "--model", "LeNet", "--args", "1), print(2", "--input", "1,1,28,28"], "not Python call arguments"),
    ([LENET, "--model", "LeNet", "--args", "classes", "--input", "1,1,28,28"], "NameError"),
    ([LENET, "--model", "LeNet", "--input", "1,x,28"], "--input '1,x,28'"),
    ([LENET, "--model", "LeNet", "--input", "1,3,28,28"], "torch forward fails"),
    ([LENET, "--model", "LeNet", "--args", "1, 2, 3", "--input", "1,1,28,28"], "fails in torch"),
    (["missing.py", "--model", "LeNet", "--input", "1,1,28,28"], "missing.py"),
])
def test_verify_bad_input_exits_two(runner, argv, message):
    r = runner.invoke(main, ["verify", *argv])
    assert r.exit_code == 2, r.output
    assert message in r.output, r.output


def test_layout_note_is_read_from_the_converted_code():
    lenet = build_converted_model(Path(LENET).read_text(), "LeNet", "10")[1].code
    assert channels_last_layout(lenet, "LeNet") == ({"x"}, {"unchanged"})
    mlp = build_converted_model(Path(MLP).read_text(), "MLP", "12, 16, 3")[1].code
    assert channels_last_layout(mlp, "MLP") == (set(), set())


@pytest.mark.parametrize("nested", [False, True], ids=["state_dict", "under-model_state_dict"])
@pytest.mark.parametrize("path,class_name,args,shape", [
    (MLP, "MLP", "12, 16, 3", (2, 12)),
    (LENET, "LeNet", "10", (2, 1, 28, 28)),
], ids=["mlp", "lenet"])
def test_export_weights_reloads_and_matches_torch(runner, tmp_path, path, class_name, args, shape, nested):
    namespace: dict = {}
    exec(compile(Path(path).read_text(), path, "exec"), namespace)  # noqa: S102 - our fixture
    torch.manual_seed(3)
    torch_model = namespace[class_name](*eval(f"({args},)")).eval()  # noqa: S307 - literal test arguments
    checkpoint = tmp_path / "ckpt.pt"
    state = torch_model.state_dict()
    torch.save({"model_state_dict": state, "epoch": 3} if nested else state, checkpoint)
    out = tmp_path / "weights.safetensors"
    r = runner.invoke(main, ["export-weights", path, "--model", class_name, "--args", args, str(checkpoint), "-o", str(out)])
    assert r.exit_code == 0, r.output
    mlx_model, result = build_converted_model(Path(path).read_text(), class_name, args)
    mlx_model.load_weights(str(out))
    mlx_model.eval()
    x = np.random.RandomState(4).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    feed = np.moveaxis(x, 1, -1) if channels_last_layout(result.code, class_name)[0] else x
    np.testing.assert_allclose(np.array(mlx_model(mx.array(feed))), expected, rtol=1e-4, atol=1e-5)


def test_export_weights_refuses_a_checkpoint_that_does_not_fit(runner, tmp_path):
    namespace: dict = {}
    exec(compile(Path(MLP).read_text(), MLP, "exec"), namespace)  # noqa: S102
    checkpoint = tmp_path / "ckpt.pt"
    torch.save(namespace["MLP"](12, 16, 4).state_dict(), checkpoint)
    out = tmp_path / "w.safetensors"
    argv = ["export-weights", MLP, "--model", "MLP", "--args", "12, 16, 3", str(checkpoint), "-o", str(out)]
    r = runner.invoke(main, argv)
    assert r.exit_code == 1 and "shape mismatch" in r.output and not out.exists(), r.output
    out.write_text("keep")
    r = runner.invoke(main, argv)
    assert r.exit_code == 2 and "--force" in r.output and out.read_text() == "keep", r.output
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    r = runner.invoke(main, [*argv[:6], str(tmp_path / "junk.pt"), "-o", str(tmp_path / "x.safetensors")])
    assert r.exit_code == 2 and "not a torch checkpoint" in r.output, r.output
