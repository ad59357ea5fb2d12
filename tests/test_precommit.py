"""The hooks in .pre-commit-hooks.yaml, run by the real `pre-commit` tool in a temporary git repository.

The fast tests take each hook's definition from this repo's .pre-commit-hooks.yaml (id,
entry, file types) and run it as a `repo: local` hook with `language: system`, calling
the torch2mlx installed next to this Python: the exact command line pre-commit runs,
without building an environment. The slow test installs the hooks the way users get
them (`pre-commit try-repo`, `language: python`, pip from the local package index).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PRE_COMMIT = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
TORCH = "import torch\n\n\ndef f(x):\n    return torch.exp(x)\n"
MLX = "import mlx.core as mx\n\n\ndef f(x):\n    return mx.exp(x)\n"

pytestmark = pytest.mark.skipif(PRE_COMMIT is None or shutil.which("git") is None, reason="pre-commit and git needed")


def _hooks() -> dict:
    return {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def _env(tmp_path) -> dict:
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pc-home"), TORCH2MLX_CACHE_DIR=str(tmp_path / "cache"),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(key, None)
    return env


def _git_repo(tmp_path, files: dict) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _env(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    for name, text in files.items():
        (repo / name).write_text(text)
    subprocess.run(["git", "add", *files], cwd=repo, check=True, env=env)
    return repo


def _local_config(repo: Path, hook_id: str) -> None:
    hook = dict(_hooks()[hook_id], language="system")
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]}))


def _run(repo, tmp_path, hook_id, *files):
    return subprocess.run([PRE_COMMIT, "run", hook_id, "--files", *files], cwd=repo, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)


def test_hooks_file_offers_both_hooks():
    hooks = _hooks()
    assert set(hooks) == {"torch2mlx-check", "torch2mlx-convert"}
    assert all(h["language"] == "python" and h["types"] == ["python"] for h in hooks.values())


def test_check_hook_fails_on_torch_code_and_passes_on_mlx(tmp_path):
    repo = _git_repo(tmp_path, {"m.py": TORCH, "clean.py": MLX})
    _local_config(repo, "torch2mlx-check")
    r = _run(repo, tmp_path, "torch2mlx-check", "m.py", "clean.py")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "m.py:1: would be rewritten" in r.stdout and "lines 1, 5" in r.stdout and "clean.py:" not in r.stdout
    assert (repo / "m.py").read_text() == TORCH  # check writes nothing
    r = _run(repo, tmp_path, "torch2mlx-check", "clean.py")
    assert r.returncode == 0, r.stdout + r.stderr


def test_convert_hook_rewrites_then_passes(tmp_path):
    repo = _git_repo(tmp_path, {"m.py": TORCH})
    _local_config(repo, "torch2mlx-convert")
    r = _run(repo, tmp_path, "torch2mlx-convert", "m.py")
    assert r.returncode == 1 and "files were modified by this hook" in r.stdout, r.stdout + r.stderr
    assert (repo / "m.py").read_text() == MLX
    r = _run(repo, tmp_path, "torch2mlx-convert", "m.py")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_try_repo_installs_and_runs_the_published_hooks(tmp_path):
    """As users run it: pre-commit builds a virtualenv from a commit of this repo (about 30 s)."""
    hook_repo = tmp_path / "hook-repo"
    hook_repo.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, hook_repo / name)
    for name in ("torch2mlx", "rules"):
        shutil.copytree(ROOT / name, hook_repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(tmp_path)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=hook_repo, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=hook_repo, check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "hooks"], cwd=hook_repo, check=True, env=env)
    repo = _git_repo(tmp_path, {"m.py": TORCH})
    r = subprocess.run([PRE_COMMIT, "try-repo", str(hook_repo), "torch2mlx-check", "--files", "m.py"],
                       cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "m.py:1: would be rewritten" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([PRE_COMMIT, "try-repo", str(hook_repo), "torch2mlx-convert", "--files", "m.py"],
                       cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert (repo / "m.py").read_text() == MLX, r.stdout + r.stderr
