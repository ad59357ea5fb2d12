"""F.dropout(x, p, training=self.training): the mask written out, MLX's nn.Dropout arithmetic."""
import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402

SOURCE = """import torch
import torch.nn as nn
import torch.nn.functional as F


class Head(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        x = F.dropout(x, p=self.p, training=self.training)
        return x
"""


def _head(p: float):
    result = convert_source(SOURCE)
    assert not result.flagged, result.code
    assert "if self.training else x" in result.code
    namespace: dict = {}
    exec(compile(result.code, "converted", "exec"), namespace)  # noqa: S102 - our own test input
    return namespace["Head"](p)


def test_training_drops_a_fraction_p_and_scales_the_rest():
    head = _head(0.3)
    mx.random.seed(0)
    x = mx.ones((200, 100))
    out = np.array(head(x))
    dropped = (out == 0).mean()
    assert abs(dropped - 0.3) < 6 * np.sqrt(0.3 * 0.7 / out.size)  # 6 standard errors
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)


def test_eval_is_the_identity_and_p_one_gives_zeros():
    head = _head(0.5)
    head.eval()
    x = mx.array(np.random.RandomState(0).standard_normal((4, 5)).astype(np.float32))
    np.testing.assert_array_equal(np.array(head(x)), np.array(x))
    all_dropped = _head(1.0)
    assert not np.isnan(np.array(all_dropped(x))).any() and (np.array(all_dropped(x)) == 0).all()


@pytest.mark.parametrize("training", ["bool(p_)", "p_.flag", "not p_", "p_ > 0 and flag"])
def test_a_name_the_lambda_would_shadow_is_flagged_anywhere_in_the_argument(training):
    """`p=float(r)` is bound once by `(lambda p_: ...)(float(r))`: a `p_` of the user's inside `training=`
    would read the lambda's parameter instead (it was translated so when `p_` was not the argument's first name)."""
    source = f"import torch.nn.functional as F\ndef f(x, p_, r, flag):\n    return F.dropout(x, p=float(r), training={training})\n"
    result = convert_source(source)
    assert result.flagged == 1, result.code
    assert "lambda p_" not in result.code
    assert "name is taken by the generated lambda" in result.diagnostics[0].message


def test_attribute_and_keyword_names_are_not_variables():
    source = "import torch.nn.functional as F\ndef f(x, q, r):\n    return F.dropout(x, p=float(r), training=q.p_ or g(p_=1))\n"
    result = convert_source(source)
    assert not result.flagged, result.code
    assert "(lambda p_: " in result.code and "if (q.p_ or g(p_=1)) else x))(float(r))" in result.code
