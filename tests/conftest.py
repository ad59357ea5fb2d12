import atexit
import os
import shutil
import tempfile

os.environ.setdefault("MLX_DEVICE", "cpu")
# the rule-index cache of this test session: never the user's ~/.cache, and gone when the session ends
if "TORCH2MLX_CACHE_DIR" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="torch2mlx-test-cache-")
    os.environ["TORCH2MLX_CACHE_DIR"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (excluded by default: -m 'not slow')")
