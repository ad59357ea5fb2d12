"""The Transform base declares what the pass reads off every transform class."""
from torch2mlx.transforms import Transform, discover


def test_hot_attributes_is_declared_on_the_base_and_holds_names():
    """A bare string (`hot_attributes = "grad"`) would be read as its letters: each entry must be a whole name."""
    assert Transform.hot_attributes == frozenset()
    for cls in discover():
        attrs = cls.hot_attributes
        assert not isinstance(attrs, str), cls
        assert all(isinstance(a, str) and a.isidentifier() for a in attrs), (cls, attrs)
