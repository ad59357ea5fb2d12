"""torch's OpInfo samples of the ops bench/opinfo_suite.py found wrong or crashing, converted and run under MLX
(docs/opinfo.md): none may be WRONG or CRASH now. The samples are torch's own (sample_inputs of its test
database), built at run time from the installed torch; the snippets are the suite's.

- torch.norm / Tensor.norm: p='nuc' was flattened first (MLX raised), a number p over a dim tuple was flagged.
- F.adaptive_avg_pool1d(x, (5,)): MLX's unflatten raised on the tuple (the rule examples check the fix: torch's
  sample has a length 5 does not divide, outside the rule's condition, where MLX's unflatten still raises).
- torch.gradient(x, spacing=None): the helper multiplied by None.
- F.conv_transpose3d(..., padding=1) with a kernel of 1 on an axis: MLX's padding= gave a wrong size (silently).
- torch.fft.fftn / rfftn(x, dim=-1): mx.fft raised on the int.
- torch.linalg.vander of a 0-d input: (N,) for torch's (1, N).
"""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlx.core")
pytest.importorskip("expecttest")  # torch.testing._internal imports it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import docstring_support as ds  # noqa: E402
import opinfo_suite  # noqa: E402

OPS = {"norm", "gradient", "nn.functional.adaptive_avg_pool1d", "nn.functional.conv_transpose3d", "fft.fftn",
       "fft.rfftn", "linalg.vander"}


@pytest.mark.slow
def test_fixed_ops_neither_wrong_nor_crash(tmp_path):
    examples, meta, _ = opinfo_suite.build(OPS, 0, 5, {"function", "method"}, ["float32"], tmp_path)
    assert {m["op"] for m in meta.values()} >= OPS | {"norm.nuc", "norm.fro"}
    outcomes = ds.run_suite(examples, jobs=2, timeout=30)
    opinfo_suite.reclassify(outcomes, meta)
    # outside the rules' conditions, where MLX raises: adaptive pooling over windows of uneven length, an
    # unbatched (4-D) input to conv_transpose3d
    outside = {"nn.functional.adaptive_avg_pool1d": "[Unflatten] Cannot unflatten",
               "nn.functional.conv_transpose3d": "[transpose] Received 5 axes for array with 4 dimensions"}
    bad = [(o.name, o.cls, o.reason.splitlines()[0] if o.reason else "", o.source) for o in outcomes
           if o.cls in ds.FAILING and not (o.cls == ds.CRASH and outside.get(meta[o.name]["op"], "@") in o.reason)]
    assert not bad, bad
    by_op = {}
    for o in outcomes:
        by_op.setdefault(meta[o.name]["op"], []).append(o.cls)
    # the forms fixed convert now (not merely flagged)
    assert ds.PASS in by_op["norm.nuc"], by_op["norm.nuc"]
    assert by_op["gradient"].count(ds.PASS) >= 2, by_op["gradient"]
    # torch's sample 4: kernel 1 on the last axis with padding 1 (MLX's padding= gave length 1, torch 2)
    classes = {o.name: o.cls for o in outcomes}
    assert classes["nn.functional.conv_transpose3d[function,float32,4]"] == ds.PASS, by_op["nn.functional.conv_transpose3d"]
    assert by_op["fft.fftn"].count(ds.PASS) >= 4 and by_op["fft.rfftn"].count(ds.PASS) >= 4, by_op
    assert ds.PASS in by_op["linalg.vander"], by_op["linalg.vander"]
