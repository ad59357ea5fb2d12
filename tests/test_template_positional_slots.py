"""An absent optional argument between two positional placeholders keeps its slot.

Dropping it would move the later argument into its place: a rule written
`f({url}, {model_dir}, {progress})` turned `load(url, progress=False)` into `f(url, False)`, False
landing in model_dir (found by a rule for torch.hub.load_state_dict_from_url)."""
import libcst as cst
import pytest

from torch2mlx.binding import bind, code_of
from torch2mlx.table.loader import load_rule_text
from torch2mlx.template import expand

RULE = load_rule_text(
    """
rules:
  - id: test.slots
    function: torch.slots
    signature: "url, model_dir=None, progress=True, check_hash=False"
    mlx: "fetch({url}, {model_dir}, {progress}, check_hash={check_hash})"
    status: exact
    examples: [{torch: "torch.slots(u)"}]
""",
    "slots.yaml",
)[0]


def _expanded(call: str) -> str:
    node = cst.parse_expression(call)
    return code_of(expand(RULE.mlx, RULE, bind(node.args, RULE.signature)))


@pytest.mark.parametrize("call, expected", [
    ("torch.slots(u, progress=False)", "fetch(u, None, False)"),
    ("torch.slots(u, model_dir=d)", "fetch(u, d)"),
    ("torch.slots(u)", "fetch(u)"),
    ("torch.slots(u, check_hash=True)", "fetch(u, check_hash=True)"),
    ("torch.slots(u, d, False)", "fetch(u, d, False)"),
])
def test_a_later_positional_argument_never_moves_into_an_absent_one_s_slot(call, expected):
    assert _expanded(call) == expected
