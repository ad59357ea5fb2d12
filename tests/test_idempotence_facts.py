"""Idempotence on real code, the causes left at 4110c93 (bench/idempotence.py over timm, torchvision and a sample
of transformers' models: 19 files still changed on a second pass; over every 10th file of torch's own sources, 14 of
229). Each test is the minimal snippet of one cause, with the files it was found in. In every case the first pass knew less than the second: a fact read off the source
before the pass (value_facts.py) or in the pass (the rewriter, a handler) that the translation makes plain, so a
second pass translated (or flagged) what the first left. None is open now (the last, llava_onevision's `x = x.view(...)`,
fixed by idem2). Each snippet keeps a torch call the converter flags (`_left_for_torch`): a text that no
longer mentions torch is returned unparsed, and the second conversion would not run.
"""
from __future__ import annotations

import difflib
import textwrap

from torch2mlx import convert_source

KEEPS_TORCH = '''

def _left_for_torch(flag):
    torch._assert(flag, "kept")
'''


def _twice(source: str) -> tuple[str, str]:
    first = convert_source(textwrap.dedent(source) + KEEPS_TORCH, "snippet.py").code
    return first, convert_source(first, "snippet.py").code


def _assert_idempotent(source: str) -> str:
    first, second = _twice(source)
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))
    return first


VALUE_FACTS_METHODS = (
    "value_facts.py (helper hf): `_Analysis.tensor` reads `recv.m(...)` as a tensor only when `recv` is one, "
    "while the pass (tensors.TensorFacts.is_tensor, rewriter._receiver_is_tensor) rewrites it, and takes its "
    "result for an array, also when a `dim=` / `keepdim=` keyword is passed or `m` is a torch-only method "
    "(not rule.ambiguous_method) on a plain receiver; the same two cases belong in _Analysis.tensor")


def test_a_function_returning_a_reduction_with_keepdim_returns_an_array_on_the_first_pass():
    # timm/layers/evo_norm.py: `manual_var(x, dim).add(eps)`; `x.mean(dim=..., keepdim=True)` on an unannotated
    # `x` is rewritten to mx.mean, so manual_var returns an array, known to value facts only once translated
    _assert_idempotent("""
        import torch

        def manual_var(x, dim):
            xm = x.mean(dim=dim, keepdim=True)
            return ((x - xm) * (x - xm)).mean(dim=dim, keepdim=True)

        def group_std(x, eps: float = 1e-5):
            return manual_var(x, dim=(2, 3)).add(eps).sqrt()
    """)


def test_a_function_returning_a_permuted_value_returns_an_array_on_the_first_pass():
    # timm/models/gcvit.py (window_partition(x, ...).view(...)), timm/utils/agc.py, transformers' deberta, gemma4,
    # gpt_neo, gptj, llama4, bark, detr / conditional_detr / maskformer image processors, axk2
    _assert_idempotent("""
        import torch

        def window_partition(x, w: int):
            B, H, W, C = x.shape
            return x.permute(0, 2, 1, 3).reshape(-1, w, C)

        def attn(x, w: int, C: int):
            return window_partition(x, w).view(-1, w * w, C)
    """)


REMOVED_DECORATORS = (
    "value_facts.py (helper hf): `_param_facts` gives a decorated def no parameter facts; a decorator the "
    "conversion removes (jit_markers.MARKERS, runtime/values.SCRIPT_IF_TRACING, nograd.GRAD_CONTEXTS, without "
    "arguments) leaves a plain def, whose parameter facts the second pass reads: skip those decorators there "
    "(both `not fn.node.decorator_list` tests); the decorator list itself belongs in torch_facts.py")


def test_a_def_under_a_removed_jit_decorator_gets_its_parameter_facts_on_the_first_pass():
    # torchvision/models/detection/roi_heads.py: @torch.jit._script_if_tracing on _onnx_heatmaps_to_keypoints_loop
    _assert_idempotent("""
        import torch

        @torch.jit._script_if_tracing
        def loop(widths):
            return widths.to(dtype=torch.float32)

        def top(rois):
            widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
            return loop(widths)
    """)


def test_a_method_under_no_grad_gets_its_parameter_facts_on_the_first_pass():
    # transformers' longcat_flash: @torch.no_grad() on LongcatFlashTopkRouter.get_topk_indices(self, scores)
    _assert_idempotent("""
        import torch
        import torch.nn as nn

        class Router(nn.Module):
            def forward(self, logits):
                scores = logits.softmax(dim=-1)
                return self.top(scores)

            @torch.no_grad()
            def top(self, scores):
                return scores.view(-1, 4)
    """)


def test_a_name_rebound_from_itself_is_followed_to_its_earlier_binding():
    # transformers' llava_onevision: apply_pooling's `image_features = image_features.view(...)` after a permute
    _assert_idempotent("""
        import torch

        def pool(x):
            x = x.permute(0, 2, 1)
            x = x.view(x.shape[0], -1)
            return x

        def use(x, n: int):
            return pool(x).reshape(n, -1)
    """)


def test_a_boolean_mask_moved_to_a_device_is_flagged_on_the_first_pass():
    # transformers' glmasr: `audio_embeds[valid_mask.to(audio_embeds.device)]`; unflagged on the first pass, the
    # output indexes an mx.array with a boolean mask, which MLX raises on: a crash the output does not announce
    out = _assert_idempotent("""
        import torch

        def pick(emb: torch.Tensor, lengths: torch.Tensor):
            valid = torch.arange(emb.shape[1], device=lengths.device)[None, :] < lengths[:, None]
            return emb[valid.to(emb.device)]
    """)
    assert out.count("# torch2mlx: boolean-mask-indexing:") == 1


def test_a_bit_cast_view_is_not_read_as_a_reshape_on_a_second_pass():
    # torchvision/datasets/utils.py: `t.view(torch.uint8)` is flagged and kept as `t.view(mx.uint8)`; a second pass
    # wrote `mx.reshape(t, mx.uint8)` (under the flag saying it was left as written)
    out = _assert_idempotent("""
        import torch

        def swap(t: torch.Tensor):
            return t.view(torch.uint8).view(*t.shape, t.itemsize)
    """)
    assert "mx.reshape(t, mx.uint8)" not in out


def test_a_flagged_layer_dtype_is_not_translated_on_a_second_pass():
    # transformers' hunyuan_v1_moe: `nn.Linear(..., bias=False, dtype=torch.float32)`
    out = _assert_idempotent("""
        import torch
        import torch.nn as nn

        class Gate(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.wg = nn.Linear(n, 4, bias=False, dtype=torch.float32)
    """)
    assert out.count("# torch2mlx: torch.nn.Linear:") == 1


# ----- torch's own sources (the CI sample, tests/test_idempotence_real.py): 14 of 229 files (every 10th) changed ----
def _assert_idempotent_as_is(source: str) -> None:
    first = convert_source(textwrap.dedent(source), "snippet.py").code
    second = convert_source(first, "snippet.py").code
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))


CHOOSER = (
    "api.py (helper layout): convert_source picks the transforms by `applies_to(text)` on the whole text, flags and "
    "generated helpers included; the chooser text must leave out `# torch2mlx:` flag lines and the top-level defs / "
    "classes under a generated-helper mark (emitter.is_generated_mark)")


def test_a_flag_naming_a_torch_api_does_not_switch_a_transform_on_for_a_second_pass():
    # torch/distributions/normal.py, fishersnedecor.py, torch/ao/..., torch/fx/_pytree.py, torch/distributed/...: the flag
    # `# torch2mlx: torch.types._size: ...` holds ": torch.", a word runtime-values' applies_to looks for; the second
    # pass then quoted the annotation (`sample_shape: '_size'`) and moved the import
    _assert_idempotent_as_is("""
        import torch
        from torch.types import _size


        def rsample(x, sample_shape: _size = ()):
            return torch.nonzero(x)
    """)


def test_a_generated_helper_does_not_switch_a_transform_on_for_a_second_pass():
    # torch/_inductor/autoheuristic/artifacts/_MMRankingA100.py: the torch_base stand-in written for a flagged torch
    # base class reads `getattr` and names ImportError, words runtime-values' applies_to looks for
    _assert_idempotent_as_is("""
        from torch.distributions import Distribution
        from torch.types import _size


        class Normal(Distribution):
            def rsample(self, sample_shape: _size = ()):
                return sample_shape
    """)


def test_a_multi_line_torch_import_moved_into_a_function_keeps_only_what_it_uses():
    # torch/_inductor/test_case.py, torch/_subclasses/functional_tensor.py, torch/testing/_internal/...
    _assert_idempotent_as_is("""
        from torch._dynamo.test_case import (
            run_tests as dynamo_run_tests,
            TestCase as DynamoTestCase,
        )


        def run_tests(needs=()):
            dynamo_run_tests(needs)


        class TestCase(DynamoTestCase):
            def setUp(self):
                super().setUp()
    """)


# ----- found on the way: a fact the pass takes from a method name nn.Module shares with torch.Tensor ---------------
def test_a_module_moved_to_a_device_is_not_taken_for_a_tensor():
    # `m = model.to(device)` made `m` a tensor: `m.half()` became `m.astype(mx.float16)`, an unflagged crash
    # (an MLX Module has no astype); unknown, `.half()` is flagged
    out = convert_source(textwrap.dedent("""
        import torch

        def run(model, device):
            m = model.to(device)
            return m.half()
    """), "snippet.py").code
    assert "astype" not in out
    assert out.count("# torch2mlx: Tensor.half:") == 1


def test_the_value_of_an_update_of_a_created_tensor_is_a_tensor_on_the_first_pass():
    # timm/loss/binary_cross_entropy.py: `target = torch.full(...).scatter_(1, target, on_value)`, then
    # `target.gt(self.target_threshold).to(dtype=target.dtype)`
    _assert_idempotent("""
        import torch


        def one_hot(idx: torch.Tensor, n: int, on: float):
            t = torch.full((idx.shape[0], n), 0.0).scatter_(1, idx.view(-1, 1), on)
            return t.gt(0.5).to(dtype=torch.float32)
    """)
