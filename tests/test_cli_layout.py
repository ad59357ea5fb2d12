"""`--layout` and the configuration's `layout` key reach convert_source (auto | channels-last | torch)."""
from click.testing import CliRunner

from torch2mlx.cli import main

MODEL = '''import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))
'''


def _convert(tmp_path, *args, config: str | None = None):
    (tmp_path / "model.py").write_text(MODEL)
    if config is not None:
        (tmp_path / "pyproject.toml").write_text(config)
    return CliRunner().invoke(main, ["convert", str(tmp_path / "model.py"), "-o", "-", *args])


def test_layout_option_chooses_the_build(tmp_path):
    auto = _convert(tmp_path)
    assert auto.exit_code == 0, auto.output
    assert "# MLX layout:" in auto.output and "Conv2dNCHW" not in auto.output  # the analysis follows this class
    torch_layout = _convert(tmp_path, "--layout", "torch")
    assert torch_layout.exit_code == 0, torch_layout.output
    assert "self.conv = Conv2dNCHW(3, 4, 3)" in torch_layout.output and "# MLX layout:" not in torch_layout.output
    bad = _convert(tmp_path, "--layout", "nhwc")
    assert bad.exit_code == 2


def test_layout_key_of_the_configuration_and_the_option_over_it(tmp_path):
    configured = _convert(tmp_path, config='[tool.torch2mlx]\nlayout = "torch"\n')
    assert configured.exit_code == 0, configured.output
    assert "Conv2dNCHW" in configured.output
    overridden = _convert(tmp_path, "--layout", "channels-last", config='[tool.torch2mlx]\nlayout = "torch"\n')
    assert overridden.exit_code == 0 and "Conv2dNCHW" not in overridden.output
    wrong = _convert(tmp_path, config='[tool.torch2mlx]\nlayout = "nhwc"\n')
    assert wrong.exit_code == 2 and "layout must be one of" in wrong.output
