"""nn-layout's messages say layouts in a user's words and what to do, never the analysis' own names (issue 14);
layouts are `layout_facts.Layout` members; the analysis runs against a `LayoutHost` (the plugin context in the
pass, a rehearsal ahead of it), not against a stand-in imitating the rewriter (issue 11)."""
import re

from torch2mlx import convert_source
from torch2mlx.context import PluginContext
from torch2mlx.layout_facts import Layout, Seq
from torch2mlx.transforms.layout.nn_layout import LayoutHost, _Rehearsal

HEADER = "import torch\nimport torch.nn as nn\n\n\n"
# the analysis' own names for layouts, as they would leak into a message
_INTERNAL = re.compile(r"\b(cl[123]|pp|nchw|to_plain|unproven)\b|\b(seq|list):|-> (plain|unknown|g)\b|\(g\)")


def test_a_loop_changing_a_layout_says_which_layouts_in_words_and_what_to_do():
    source = HEADER + '''class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        x = self.conv(x)
        for _ in range(2):
            x = x.flatten(1)
        return x
'''
    result = convert_source(source, "model.py", layout="channels-last")
    # one cause, one warning: on the `for` line (not above the `def`), and `return x` after it is not flagged again
    [loop] = [d for d in result.diagnostics if d.rule_id == "nn-layout" and d.severity.value != "info"]
    assert loop.line == HEADER.count("\n") + 8 and "loop" in loop.message, loop.format()
    assert "# torch2mlx: nn-layout: the loop takes `x`" in result.code.split("for _ in range(2):")[0].splitlines()[-2]
    assert "from channels-last (N, H, W, C) to torch's layout" in loop.message, loop.message
    assert "convert this loop by hand" in loop.message
    for d in result.diagnostics:
        if d.rule_id == "nn-layout":
            assert not _INTERNAL.search(d.message), d.message


def test_layouts_are_an_enum_equal_to_their_old_values_with_words():
    assert Layout.CL2 == "cl2" and f"{Layout.POOLED}" == "g"  # outputs and hashing unchanged
    assert Layout.CL2.words == "channels-last (N, H, W, C)" and Layout.PLAIN.words == "torch's layout"
    assert Seq(Layout.CL1).words == "a list of channels-last (N, L, C) maps"
    assert Seq(Layout.CL1) != Layout.CL1 and Seq(Layout.CL1) == Seq(Layout.CL1)


def test_the_plugin_context_and_the_rehearsal_are_layout_hosts():
    context = PluginContext(rewriter=None, project_layout_builders=frozenset({"Block"}))
    assert isinstance(context, LayoutHost)
    rehearsal = _Rehearsal(context)
    assert isinstance(rehearsal, LayoutHost)
    assert rehearsal.project_layout_builders == frozenset({"Block"}) and not rehearsal.flagged
    rehearsal.flag(None, "nn-layout", "needs-review", "why")
    assert rehearsal.flagged and rehearsal.flags() == ()
