"""torch.hub.load_state_dict_from_url without torch (handlers/torch_checkpoint_files.py): a checkpoint written by
torch.save, served by a file:// URL, read by the converted code with torch blocked, equals torch's tensors exactly
(every dtype MLX has, views, tied entries, both of torch's file formats); torchvision's re-export of the name is
bound to the same helper; a state_dict read so loads into a converted model with load_torch_weights."""
import ast
import hashlib
import json
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from torch2mlx import convert_source

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

USER_FILE = """
import torch


def fetch(url, model_dir, **kwargs):
    return torch.hub.load_state_dict_from_url(url, model_dir=model_dir, **kwargs)
"""

REEXPORT = """
try:
    from torch.hub import load_state_dict_from_url  # noqa: 401
except ImportError:
    from torch.utils.model_zoo import load_url as load_state_dict_from_url  # noqa: 401
"""


class Custom:
    """An object a state_dict does not hold: the reader refuses it."""


def _state_dict() -> OrderedDict:
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict()
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64):
        sd[str(dtype)] = torch.randn(3, 4, generator=g).to(dtype)
    for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32):
        sd[str(dtype)] = torch.randint(-50 if dtype.is_signed else 0, 100, (2, 5), generator=g).to(dtype)
    sd["mask"] = torch.randn(7, generator=g) > 0
    sd["param"] = torch.nn.Parameter(torch.randn(2, 3, generator=g))
    base = torch.randn(6, 4, generator=g)
    sd["transposed"] = base.t()          # a strided view: rebuilt from the storage as torch does
    sd["rows"] = base[2:4]               # a storage offset
    sd["tied_a"] = base
    sd["tied_b"] = base                  # one tensor under two keys
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd._metadata = OrderedDict({"": {"version": 2}})
    return sd


def _expected(sd) -> dict:
    """key -> (shape, dtype name, values as numpy; bfloat16 as its bits)."""
    out = {}
    for key, t in sd.items():
        t = t.detach()
        values = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        out[key] = (list(t.shape), str(t.dtype).replace("torch.", ""), values)
    return out


def _converted(source: str) -> str:
    result = convert_source(source)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], [d.format() for d in result.diagnostics]
    for node in ast.walk(ast.parse(result.code)):
        assert not (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names))
        assert not (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch")
    return result.code


# run in a process where torch cannot be imported: the converted module, then `calls` (json: name, args, kwargs)
RUNNER = """
import json, sys
sys.modules["torch"] = None
import numpy as np
import mlx.core as mx
namespace = {"__name__": "converted"}
exec(open(sys.argv[1]).read(), namespace)
results = []
for name, args, kwargs in json.load(open(sys.argv[2])):
    try:
        sd = namespace[name](*args, **kwargs)
    except Exception as error:
        results.append({"error": type(error).__name__ + ": " + str(error)})
        continue
    entry = {"keys": list(sd), "type": type(sd).__name__, "metadata": repr(getattr(sd, "_metadata", None)),
             "tied": sd["tied_a"] is sd["tied_b"] if "tied_a" in sd else None, "arrays": {}}
    for key, a in sd.items():
        bits = a.view(mx.int16) if a.dtype == mx.bfloat16 else a
        np.save(f"{sys.argv[3]}/{len(results)}-{key}.npy", np.array(bits))
        entry["arrays"][key] = [list(a.shape), str(a.dtype).replace("mlx.core.", "").rstrip("_")]
    results.append(entry)
json.dump(results, open(f"{sys.argv[3]}/results.json", "w"))
"""


def _run_without_torch(tmp_path, code: str, calls: list) -> list:
    (tmp_path / "converted.py").write_text(code)
    (tmp_path / "calls.json").write_text(json.dumps(calls))
    (tmp_path / "runner.py").write_text(RUNNER)
    out = tmp_path / "results"
    out.mkdir()
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "converted.py"),
                           str(tmp_path / "calls.json"), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    for i, entry in enumerate(results):
        for key in entry.get("arrays", {}):
            entry["arrays"][key].append(np.load(out / f"{i}-{key}.npy"))
    return results


def _assert_same(entry: dict, sd) -> None:
    assert "error" not in entry, entry.get("error")
    assert entry["keys"] == list(sd)
    assert entry["type"] == "OrderedDict" and entry["metadata"] == repr(sd._metadata)
    assert entry["tied"] is True
    for key, (shape, dtype, values) in _expected(sd).items():
        got_shape, got_dtype, got = entry["arrays"][key]
        assert (got_shape, got_dtype) == (shape, dtype), key
        assert got.dtype == values.dtype and np.array_equal(got, values), key


@pytest.mark.slow
def test_checkpoints_read_without_torch_equal_torch_exactly(tmp_path):
    sd = _state_dict()
    new = tmp_path / "new.pth"
    torch.save(sd, new)
    digest = hashlib.sha256(new.read_bytes()).hexdigest()
    hashed = tmp_path / f"weights-{digest[:10]}.pth"
    new.rename(hashed)
    wrong = tmp_path / "weights-0badc0de.pth"
    wrong.write_bytes(hashed.read_bytes())
    legacy = tmp_path / "legacy.pth"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(tmp_path / "legacy.zip", "w") as archive:  # torch's legacy zip: one checkpoint inside
        archive.write(legacy, "inner.pth")

    torch.save({"obj": Custom()}, tmp_path / "object.pth")
    cache = str(tmp_path / "cache")
    calls = [
        ("fetch", [hashed.as_uri(), cache], {"check_hash": True, "progress": False}),
        ("fetch", [legacy.as_uri(), cache], {"map_location": "cpu"}),
        ("fetch", [(tmp_path / "legacy.zip").as_uri(), cache], {"file_name": "renamed.zip", "progress": False}),
        ("fetch", [wrong.as_uri(), cache], {"check_hash": True, "progress": False}),
        ("fetch", [(tmp_path / "object.pth").as_uri(), cache], {"progress": False}),
    ]
    results = _run_without_torch(tmp_path, _converted(USER_FILE), calls)
    for entry in results[:3]:
        _assert_same(entry, sd)
    assert results[3]["error"].startswith("RuntimeError: invalid hash value")
    assert results[4]["error"].startswith("UnpicklingError") and "Custom" in results[4]["error"]
    # the same cache as torch's: file names as given, the bad download removed, the legacy zip extracted beside it
    assert sorted(os.listdir(cache)) == sorted([hashed.name, "legacy.pth", "renamed.zip", "inner.pth", "object.pth"])
    reference = torch.hub.load_state_dict_from_url(hashed.as_uri(), model_dir=cache, check_hash=True)
    assert list(reference) == list(sd)


def test_torchvision_reexport_is_bound_to_the_helper():
    code = _converted(REEXPORT)
    tree = ast.parse(code)
    assigned = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert [ast.unparse(n) for n in assigned] == ["load_state_dict_from_url = hub_load_state_dict_from_url"]
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert defined == ["torch_checkpoint_load", "hub_download_url_to_file", "hub_load_state_dict_from_url"]


def test_reexport_with_the_helper_name_taken_binds_a_fresh_helper():
    result = convert_source(REEXPORT + "\n\ndef hub_load_state_dict_from_url():\n    return 1\n")
    assert not [d for d in result.diagnostics if d.severity.value != "info"]
    tree = ast.parse(result.code)
    assigned = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Assign)]
    assert assigned == ["load_state_dict_from_url = hub_load_state_dict_from_url_1"]
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "hub_load_state_dict_from_url_1" in defined and defined[-1] == "hub_load_state_dict_from_url"  # the user's


def test_default_cache_directory_and_map_location_function(tmp_path, monkeypatch):
    """$TORCH_HOME/hub/checkpoints as torch's; a map_location function raises (torch would call it)."""
    sd = OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3))
    torch.save(sd, tmp_path / "w.pth")
    namespace = {"__name__": "converted"}
    exec(_converted(USER_FILE.replace("model_dir=model_dir", "model_dir")), namespace)  # noqa: S102
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    got = namespace["fetch"]((tmp_path / "w.pth").as_uri(), None, progress=False)
    assert os.listdir(tmp_path / "home" / "hub" / "checkpoints") == ["w.pth"]
    assert np.array_equal(np.array(got["w"]), sd["w"].numpy()) and got["w"].dtype == mx.float32
    with pytest.raises(NotImplementedError, match="map_location"):
        namespace["fetch"]((tmp_path / "w.pth").as_uri(), None, map_location=lambda s, loc: s)


def test_unknown_global_is_refused_before_it_runs(tmp_path, capfd):
    """The allow-list: a pickle naming os.system is refused, never called."""
    namespace = {"__name__": "converted"}
    exec(_converted(USER_FILE), namespace)  # noqa: S102

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    payload = pickle.dumps({"x": Evil()}, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:  # torch's zip format
        archive.writestr("evil/data.pkl", payload)
        archive.writestr("evil/byteorder", "little")
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:  # a legacy zip: one legacy-format file
        archive.writestr("inner.pth", header + payload)
    for name in ("evil.pth", "evil.zip"):
        with pytest.raises(pickle.UnpicklingError, match="system"):
            namespace["fetch"]((tmp_path / name).as_uri(), str(tmp_path / "c"), progress=False)
    assert "should-not-run" not in capfd.readouterr().out


MODEL = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


def pretrained(url):
    model = Net()
    model.load_state_dict(torch.hub.load_state_dict_from_url(url, progress=False))
    return model
"""


def test_state_dict_loads_into_the_converted_model(tmp_path, monkeypatch):
    """torch's layout comes back (conv kernels (O, I, kH, kW)); the converted model's load_state_dict stays
    flagged, and load_torch_weights moves the axes: the converted model then computes what torch's does."""
    from torch2mlx import load_torch_weights

    namespace_t: dict = {}
    exec(MODEL, namespace_t)  # noqa: S102
    torch.manual_seed(0)
    net = namespace_t["Net"]().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    torch.save(net.state_dict(), tmp_path / "net.pth")
    result = convert_source(MODEL)
    flagged = [d for d in result.diagnostics if d.severity.value != "info"]
    assert flagged and all("load_state_dict" in d.message for d in flagged), [d.format() for d in flagged]
    namespace: dict = {"__name__": "converted"}
    exec(result.code, namespace)  # noqa: S102
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    sd = namespace["hub_load_state_dict_from_url"]((tmp_path / "net.pth").as_uri(), progress=False)
    assert tuple(sd["conv.weight"].shape) == (4, 3, 3, 3)
    model = namespace["Net"]()
    load_torch_weights(model, sd)
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    actual = np.array(model(mx.array(x.transpose(0, 2, 3, 1))))  # the converted model is channels-last
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_converted_package_reads_weights_through_the_reexport_without_torch(tmp_path):
    """torchvision's layout: `_utils.py` re-exports the name, `models/_api.py` imports and calls it; the converted
    package converts with no flag and, with torch blocked, returns torch's tensors."""
    src = tmp_path / "src" / "pkg"
    (src / "models").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "models" / "__init__.py").write_text("")
    (src / "_utils.py").write_text(REEXPORT)
    (src / "models" / "_api.py").write_text(
        "from .._utils import load_state_dict_from_url\n\n\n"
        "def get_state_dict(url, model_dir):\n    return load_state_dict_from_url(url, model_dir, progress=False)\n")
    out = tmp_path / "out" / "pkg"
    done = subprocess.run([sys.executable, "-m", "torch2mlx", "convert", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    sd = OrderedDict(w=torch.randn(3, 2), n=torch.tensor([7, 8]))
    torch.save(sd, tmp_path / "w.pth")
    probe = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); import numpy as np\n"
             "import pkg.models._api as a\n"
             "sd = a.get_state_dict(sys.argv[2], sys.argv[3])\n"
             "np.savez(sys.argv[4], **{k: np.array(v) for k, v in sd.items()})\n")
    ran = subprocess.run([sys.executable, "-c", probe, str(out.parent), (tmp_path / "w.pth").as_uri(),
                          str(tmp_path / "cache"), str(tmp_path / "got.npz")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    got = np.load(tmp_path / "got.npz")
    assert sorted(got.files) == ["n", "w"]
    assert np.array_equal(got["w"], sd["w"].numpy()) and got["w"].dtype == np.float32
    assert np.array_equal(got["n"], sd["n"].numpy()) and got["n"].dtype == np.int64


def test_load_torch_weights_takes_mx_arrays_bfloat16_and_tied():
    """What the reader returns: mx.arrays (bfloat16 too), one object under two keys for a tied tensor."""
    import mlx.nn as nn

    from torch2mlx import load_torch_weights

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

    weight = mx.array(np.arange(6, dtype=np.float32).reshape(2, 3) / 7).astype(mx.bfloat16)
    bias = mx.array(np.array([0.5, -2.0], dtype=np.float32))
    model = M()
    report = load_torch_weights(model, {"fc.weight": weight, "fc.bias": bias, "head.weight": weight})
    assert report.tied == (("head.weight", "fc.weight"),) and not report.unexpected
    assert model.fc.weight.dtype == mx.float32
    assert np.array_equal(np.array(model.fc.weight), np.array(weight.astype(mx.float32)))
    with pytest.raises(ValueError, match="unexpected"):
        load_torch_weights(M(), {"fc.weight": weight, "fc.bias": bias, "head.weight": mx.array(weight)})
