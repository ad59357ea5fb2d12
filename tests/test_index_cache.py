"""The on-disk rule-index cache (`torch2mlx.cache.load_index`): used when valid, rebuilt when any
rule file or the code changes, when the entry is corrupt or unreadable, harmless when the cache
directory cannot be written, and the loaded index is the same as a freshly built one.

Every test points TORCH2MLX_CACHE_DIR into tmp_path: nothing is written to the user's cache.
Whether the cache was used is observed by counting builds and YAML parses, never by timing.
"""
import dataclasses
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from torch2mlx import api, cache
from torch2mlx.table import RuleError, RuleIndex, load_rule_files, loader
from torch2mlx.template import template_placeholders, template_roots

SHIPPED = loader.default_rule_paths()
SMALL_SET = ("reductions.yaml", "shape.yaml")  # a few shipped files: quick to build, still real rules

EXTRA = """\
rules:
  - id: my.softmax
    function: torch.softmax
    signature: "input, dim"
    mlx: "mx.softmax({input}, axis={dim})"
    status: exact
    examples: [{torch: "torch.softmax(x, 1)"}]
"""


@pytest.fixture
def counts(monkeypatch, tmp_path):
    """The cache in tmp_path; counts of index builds and of YAML documents parsed."""
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))
    loader._rules_of_text.cache_clear()  # the in-process memo of parsed files would hide a rebuild
    seen = {"builds": 0, "yaml": 0}
    build, parse = loader.load_rule_texts, yaml.load

    def counting_build(sources):
        seen["builds"] += 1
        loader._rules_of_text.cache_clear()
        return build(sources)

    def counting_parse(*args, **kwargs):
        seen["yaml"] += 1
        return parse(*args, **kwargs)

    monkeypatch.setattr(loader, "load_rule_texts", counting_build)
    monkeypatch.setattr(yaml, "load", counting_parse)
    yield seen
    loader._rules_of_text.cache_clear()


@pytest.fixture
def small_table(monkeypatch, tmp_path):
    """Copies of a few shipped rule files stand in for the shipped table (so they can be edited)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name in SMALL_SET:
        (rules_dir / name).write_bytes((loader.default_rule_dir() / name).read_bytes())
    monkeypatch.setattr(loader, "default_rule_paths", lambda: sorted(rules_dir.glob("*.yaml")))
    return rules_dir


def _entries(tmp_path) -> list:
    return sorted((tmp_path / "cache" / "index").glob("*.pickle"))


def _same_index(a: RuleIndex, b: RuleIndex) -> None:
    assert list(a.by_id) == list(b.by_id)
    for rid, rule in a.by_id.items():
        other = b.by_id[rid]
        assert rule == other
        assert dataclasses.asdict(rule) == dataclasses.asdict(other)  # also params and example inputs
        assert rule.spec("dim") == other.spec("dim")
        for mine, theirs in zip([rule.mlx, *(v.mlx for v in rule.variants)], [other.mlx, *(v.mlx for v in other.variants)]):
            assert mine == theirs
            if mine is not None:
                assert template_placeholders(mine) == template_placeholders(theirs)
                assert template_roots(mine) == template_roots(theirs)
    for table in ("functions", "methods", "values", "attributes"):
        mine, theirs = getattr(a, table), getattr(b, table)
        assert {k: r.id for k, r in mine.items()} == {k: r.id for k, r in theirs.items()}
        for rule in mine.values():  # the lookup dicts share the rules of by_id, as when built
            assert rule is a.by_id[rule.id]
    for name in a.functions:
        assert a.function(name).id == b.function(name).id
    for name in a.methods:
        assert a.method(name).id == b.method(name).id
    assert len(a) == len(b)


def test_second_load_uses_the_cache_and_parses_no_yaml(counts, small_table, tmp_path):
    first = cache.load_index()
    assert counts["builds"] == 1 and counts["yaml"] == len(SMALL_SET)
    assert len(_entries(tmp_path)) == 1
    second = cache.load_index()
    assert counts == {"builds": 1, "yaml": len(SMALL_SET)}
    _same_index(first, second)
    assert not [p for p in (tmp_path / "cache" / "index").iterdir() if p.suffix != ".pickle"]  # no temp file left


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped table: (a freshly built index, the same loaded back from the cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path_factory.mktemp("shipped-cache")))
        loader._rules_of_text.cache_clear()
        built = []
        build = loader.load_rule_texts
        mp.setattr(loader, "load_rule_texts", lambda sources: built.append(1) or build(sources))
        fresh = cache.load_index()  # parsed, validated and written to the cache
        cached = cache.load_index()
        assert built == [1]
    assert all(cached.by_id[rid] is not rule for rid, rule in fresh.by_id.items())  # really unpickled
    return fresh, cached


def test_cached_shipped_index_equals_a_fresh_one(shipped):
    fresh, cached = shipped
    _same_index(fresh, cached)
    _same_index(cached, fresh)
    assert {r.source.rsplit(":", 1)[0] for r in cached.by_id.values()} == {str(p) for p in SHIPPED}
    by_loader = RuleIndex(load_rule_files(SHIPPED))  # what build_index used to do
    _same_index(by_loader, cached)


def test_cached_index_converts_like_a_fresh_one(shipped):
    fresh, cached = shipped
    examples = [ex.torch for rule in fresh.by_id.values() for ex in rule.examples[:1]][::4]
    assert len(examples) > 100
    for snippet in examples:
        source = f"import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nx = torch.ones(2, 3)\ny = {snippet}\n"
        try:
            want = api.convert_source(source, "ex.py", index=fresh)
        except Exception as exc:  # noqa: BLE001 - whatever fresh does, cached must do too
            with pytest.raises(type(exc)):
                api.convert_source(source, "ex.py", index=cached)
            continue
        got = api.convert_source(source, "ex.py", index=cached)
        assert (got.code, got.diagnostics, got.converted) == (want.code, want.diagnostics, want.converted), snippet


def test_a_changed_shipped_rule_file_rebuilds(counts, small_table, tmp_path):
    before = cache.load_index()
    target = small_table / "shape.yaml"
    with target.open("a", encoding="utf-8") as handle:  # one more rule at the end of the file
        handle.write("\n" + EXTRA.split("\n", 1)[1])
    after = cache.load_index()
    assert counts["builds"] == 2
    assert "my.softmax" in after.by_id and "my.softmax" not in before.by_id
    assert len(_entries(tmp_path)) == 2
    cache.load_index()
    assert counts["builds"] == 2  # the new entry is used


def test_extra_rule_files_are_part_of_the_key(counts, small_table, tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(EXTRA, encoding="utf-8")
    base = cache.load_index()
    with_extra = cache.load_index([extra])
    assert counts["builds"] == 2
    assert "my.softmax" in with_extra.by_id and "my.softmax" not in base.by_id
    assert cache.load_index([extra]).function("torch.softmax").mlx == "mx.softmax({input}, axis={dim})"
    assert counts["builds"] == 2
    extra.write_text(EXTRA.replace("axis={dim})", "axis={dim}, precise=True)"), encoding="utf-8")
    changed = cache.load_index([extra])
    assert counts["builds"] == 3
    assert changed.function("torch.softmax").mlx == "mx.softmax({input}, axis={dim}, precise=True)"
    moved = tmp_path / "moved.yaml"  # same contents, other name: Rule.source differs, so another entry
    moved.write_bytes(extra.read_bytes())
    assert cache.load_index([moved]).by_id["my.softmax"].source == f"{moved}:2"
    assert counts["builds"] == 4


def test_a_code_change_rebuilds(counts, small_table, monkeypatch):
    cache.load_index()
    monkeypatch.setattr(cache, "_code_fingerprint", lambda: "some-other-code")
    cache.load_index()
    assert counts["builds"] == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-key", "not-an-index"])
def test_a_corrupt_entry_is_rebuilt_silently(counts, small_table, tmp_path, damage):
    good = cache.load_index()
    (entry,) = _entries(tmp_path)
    data = entry.read_bytes()
    entry.write_bytes({
        "garbage": b"\x00not a pickle at all",
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "other-key": pickle.dumps(("0" * 64, good)),
        "not-an-index": pickle.dumps((entry.stem, {"by_id": {}})),
    }[damage])
    rebuilt = cache.load_index()
    assert counts["builds"] == 2
    _same_index(good, rebuilt)
    cache.load_index()  # the entry was rewritten whole
    assert counts["builds"] == 2


def test_an_unreadable_entry_is_rebuilt(counts, small_table, tmp_path):
    cache.load_index()
    (entry,) = _entries(tmp_path)
    entry.unlink()
    entry.mkdir()  # reading it fails, and so does replacing it
    index = cache.load_index()
    assert counts["builds"] == 2 and len(index) > 10
    assert entry.is_dir()


@pytest.mark.parametrize("how", ["under-a-file", "read-only"])
def test_an_unwritable_cache_dir_means_no_cache(counts, small_table, tmp_path, monkeypatch, how):
    if how == "under-a-file":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(blocker / "cache"))
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write a read-only directory")
        readonly = tmp_path / "ro"
        readonly.mkdir()
        readonly.chmod(0o500)
        monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(readonly / "cache"))
    first = cache.load_index()
    second = cache.load_index()
    assert counts["builds"] == 2  # no cache, no error
    _same_index(first, second)


def test_rule_errors_are_raised_as_before_and_not_cached(counts, small_table, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"bad.yaml:2"):
        cache.load_index([bad])
    with pytest.raises(RuleError, match="cannot read rule file"):
        cache.load_index([tmp_path / "missing.yaml"])
    assert _entries(tmp_path) == []


def test_build_index_goes_through_the_disk_cache(counts, small_table, monkeypatch, tmp_path):
    monkeypatch.setattr(api, "_INDEX_CACHE", {})
    index = api.build_index()
    assert api.build_index() is index  # once per process
    assert len(_entries(tmp_path)) == 1
    monkeypatch.setattr(api, "_INDEX_CACHE", {})
    api.build_index()
    assert counts["builds"] == 1


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "here"))
    assert cache.default_cache_dir() == tmp_path / "here"
    assert cache.index_cache_dir() == tmp_path / "here" / "index"
    monkeypatch.delenv("TORCH2MLX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "torch2mlx"


def test_old_entries_are_pruned(counts, small_table, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "INDEX_ENTRIES_KEPT", 2)
    for n in range(4):
        monkeypatch.setattr(cache, "_code_fingerprint", lambda n=n: f"code-{n}")
        cache.load_index()
        assert len(_entries(tmp_path)) == min(n + 1, 2)
    cache.load_index()  # the newest entry is kept
    assert counts["builds"] == 4


def _child(code: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


HEAVY = ("numpy", "yaml", "jsonschema", "pathspec", "concurrent.futures.process", "torch2mlx.weights",
         "torch2mlx.verify", "torch2mlx.notebook", "torch2mlx.table.schema")


def test_importing_the_cli_imports_nothing_a_conversion_does_not_need():
    loaded = _child(f"""
        import sys
        import torch2mlx.cli
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """, dict(os.environ))
    assert loaded == "[]"


def test_a_conversion_with_a_warm_cache_parses_no_yaml(tmp_path):
    env = dict(os.environ, TORCH2MLX_CACHE_DIR=str(tmp_path / "cache"))
    small = tmp_path / "small.py"
    small.write_text("import torch\ny = torch.zeros(3).sum()\n", encoding="utf-8")
    probe = f"""
        import sys
        from torch2mlx.table import loader
        built = []
        build = loader.load_rule_texts
        loader.load_rule_texts = lambda sources: built.append(1) or build(sources)
        from torch2mlx.cli import main
        try:
            main(["convert", {str(small)!r}])
        except SystemExit:
            pass
        print(bool(built), sorted(m for m in {HEAVY!r} if m in sys.modules))
    """
    for _ in range(3):  # another developer's edit of the package between two runs changes the key: retry
        _child(probe, env)
        built, loaded = _child(probe, env).splitlines()[-1].split(" ", 1)
        if built == "False":
            break
    assert built == "False"
    assert loaded == "[]"
    import torch2mlx

    assert torch2mlx.load_torch_weights.__module__ == "torch2mlx.weights"  # still there, imported on use
