from hypothesis import given
from hypothesis import strategies as st

from impasto.schedule import plan_scales


def test_single_scale_without_pyramid():
    assert [(s.size, s.iterations) for s in plan_scales((400, 300), 512, 100)] == [
        ((512, 384), 100)
    ]


def test_pyramid_doubles_up_to_size():
    scales = plan_scales((400, 300), 512, 100, pyramid_start=128, pyramid_iterations=50)
    assert [s.size for s in scales] == [(128, 96), (256, 192), (512, 384)]
    assert [s.iterations for s in scales] == [50, 50, 100]


@given(
    w=st.integers(20, 3000),
    h=st.integers(20, 3000),
    size=st.integers(64, 4096),
    start=st.integers(16, 4096),
    factor=st.floats(1.2, 4.0),
)
def test_pyramid_properties(w, h, size, start, factor):
    scales = plan_scales((w, h), size, 7, start, 3, factor)
    sides = [max(s.size) for s in scales]
    assert sides[-1] == size and scales[-1].iterations == 7
    assert sides == sorted(sides)
    if start < size:
        assert sides[0] == start
        for a, b in zip(sides, sides[1:]):
            assert b / a <= factor * 1.05 + 1 / a
