import os

os.environ.setdefault("MLX_DEVICE", "cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (excluded by default: -m 'not slow')")
