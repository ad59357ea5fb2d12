"""A no-grad flag quoting a call written over several lines (transformers' modeling_clipseg.py crashed the converter:
a comment node cannot hold a line break)."""
import textwrap

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""\
    import torch
    from torch import nn


    class Head(nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values, flag):
            with torch.no_grad():
                feats = self.clip.get_image_features(
                    pixel_values=pixel_values,
                    interpolate_pos_encoding=flag,
                )
            return feats
    """)


def test_multi_line_call_in_a_no_grad_flag_is_one_comment_line():
    result = convert_source(SOURCE, "head.py")
    flags = [line.strip() for line in result.code.splitlines() if line.strip().startswith("# torch2mlx: no-grad:")]
    assert len(flags) == 1 and "get_image_features( pixel_values=pixel_values" in flags[0], result.code
    assert [d.rule_id for d in result.diagnostics if d.severity == "warning"] == ["no-grad"]
    assert convert_source(result.code, "head.py").code == result.code
