import os
import tempfile

os.environ.setdefault("MLX_DEVICE", "cpu")
# the rule-index cache of this test session: never the user's ~/.cache
os.environ.setdefault("TORCH2MLX_CACHE_DIR", tempfile.mkdtemp(prefix="torch2mlx-test-cache-"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (excluded by default: -m 'not slow')")
