"""F.cross_entropy with probability targets: nn.losses.cross_entropy computes logsumexp(x) - sum(p * x), torch
-sum(p * log_softmax(x)); equal only where the targets sum to 1 over the classes (the OpInfo suite's samples do
not). The plain translation states that assumption; the local helper (weight= / ignore_index=) needs none."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mlx import convert_source
from tests.model_support import exec_source


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g)  # rows of p do not sum to 1


def test_the_plain_translation_states_that_probability_targets_sum_to_one() -> None:
    result = convert_source("import torch.nn.functional as F\n\n\ndef loss(x, p):\n    return F.cross_entropy(x, p)\n")
    notes = [d.message for d in result.diagnostics if d.severity.value == "info"]
    assert result.flagged == 0 and any("probability targets sum to 1" in m for m in notes), notes
    x, p = _inputs()
    ns = exec_source(result.code, "ce_plain")
    import mlx.core as mx

    normalized = p / p.sum(1, keepdim=True)
    got = float(ns["loss"](mx.array(x.numpy()), mx.array(normalized.numpy())))
    np.testing.assert_allclose(got, F.cross_entropy(x, normalized).item(), rtol=1e-4, atol=1e-5)
    off = float(ns["loss"](mx.array(x.numpy()), mx.array(p.numpy())))
    assert abs(off - F.cross_entropy(x, p).item()) > 1e-3  # what the assumption is about


def test_the_local_helper_is_exact_for_targets_that_do_not_sum_to_one() -> None:
    source = "import torch.nn.functional as F\n\n\ndef loss(x, p, w):\n    return F.cross_entropy(x, p, w, label_smoothing=0.2)\n"
    result = convert_source(source)
    assert result.flagged == 0
    ns = exec_source(result.code, "ce_helper")
    import mlx.core as mx

    x, p = _inputs()
    w = torch.tensor([0.5, 2.0, 1.0, 3.0])
    got = float(ns["loss"](mx.array(x.numpy()), mx.array(p.numpy()), mx.array(w.numpy())))
    np.testing.assert_allclose(got, F.cross_entropy(x, p, w, label_smoothing=0.2).item(), rtol=1e-4, atol=1e-5)
