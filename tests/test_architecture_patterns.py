"""patterns.dotted / is_method_call / is_string / index_of: what the training transforms match on the tree
instead of comparing rendered code to text."""
import libcst as cst

from torch2mlx.patterns import dotted, index_of, is_integer, is_method_call, is_string


def _e(text: str) -> cst.BaseExpression:
    return cst.parse_expression(text)


def test_dotted_reads_names_and_attribute_chains_only():
    assert dotted(_e("model")) == "model"
    assert dotted(_e("self.net.fc")) == "self.net.fc"
    assert dotted(_e("( self . net )")) == "self.net"  # spacing and parentheses as written do not matter
    assert dotted(_e("self.nets[0]")) is None and dotted(_e("f().x")) is None and dotted(_e("1")) is None


def test_method_call_without_arguments():
    assert is_method_call(_e("self.model.parameters()"), "self.model", "parameters")
    assert not is_method_call(_e("self.model.parameters(True)"), "self.model", "parameters")
    assert not is_method_call(_e("model.parameters()"), "self.model", "parameters")
    assert not is_method_call(_e("model.buffers()"), "model", "parameters")


def test_string_literals_by_value():
    assert is_string(_e('"lr"'), "lr") and is_string(_e("'lr'"), "lr") and is_string(_e('"""lr"""'), "lr")
    assert not is_string(_e('b"lr"'), "lr") and not is_string(_e('"lr2"'), "lr") and not is_string(_e("lr"), "lr")


def test_index_of_one_plain_index():
    assert is_integer(index_of(_e("x[0]")), "0")
    assert index_of(_e("x[0, 1]")) is None and index_of(_e("x[0:1]")) is None and index_of(_e("x")) is None
    assert is_string(index_of(_e('g["lr"]')), "lr")


def _text_comparisons(path) -> list:
    """`code_of(x) == "..."` / `in ("...", ...)` / `!= f"..."`: rendered code compared to text."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        rendered = [e for e in (node.left, *node.comparators)
                    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "code_of"]
        texts = [e for e in (node.left, *node.comparators) for e in ([e] if not isinstance(e, ast.Tuple) else e.elts)
                 if isinstance(e, ast.JoinedStr) or (isinstance(e, ast.Constant) and isinstance(e.value, str))]
        if rendered and texts:
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_training_transforms_compare_no_rendered_code_to_text():
    from pathlib import Path

    import torch2mlx

    package = Path(torch2mlx.__file__).parent / "transforms" / "training"
    found = [f for path in sorted(package.glob("*.py")) for f in _text_comparisons(path)]
    assert not found, f"match the tree (torch2mlx.patterns), not code_of(...) text: {found}"


def test_the_text_comparison_check_can_fail(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('if code_of(x) == "False" or code_of(y) in ("a", f"{z}.b"):\n    pass\n')
    assert _text_comparisons(probe) == ["probe.py:1", "probe.py:1"]
