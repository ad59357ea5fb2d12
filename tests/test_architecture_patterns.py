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
