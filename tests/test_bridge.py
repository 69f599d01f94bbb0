import numpy as np
import pytest

from kseq2seq import StateBridge


def _states(depth):
    return [
        [np.full((2, 3), float(layer)), np.full((2, 3), -float(layer))]
        for layer in range(depth)
    ]


def _layers(mapped):
    return [None if state is None else float(state[0][0, 0]) for state in mapped]


@pytest.mark.parametrize(
    "encoder_depth, decoder_depth, expected",
    [
        (1, 1, [0.0]),
        (3, 3, [0.0, 1.0, 2.0]),
        (3, 1, [2.0]),
        (4, 2, [2.0, 3.0]),
        (1, 3, [None, None, 0.0]),
        (2, 3, [None, 0.0, 1.0]),
    ],
)
def test_states_are_aligned_at_the_top(encoder_depth, decoder_depth, expected):
    bridge = StateBridge(decoder_depth)
    assert _layers(bridge(_states(encoder_depth))) == expected


def test_shared_state_is_handed_over_whole():
    state = [np.ones((2, 3)), np.zeros((2, 3))]
    mapped = StateBridge(4, shared_state=True)([state])
    assert len(mapped) == 1
    np.testing.assert_array_equal(np.asarray(mapped[0][0]), state[0])
    np.testing.assert_array_equal(np.asarray(mapped[0][1]), state[1])


def test_config_round_trip():
    bridge = StateBridge(3, shared_state=True, name="b")
    assert (
        StateBridge.from_config(bridge.get_config()).get_config() == bridge.get_config()
    )


def test_dense_bridge_projects_every_transferred_state():
    bridge = StateBridge(3, units=6)
    mapped = bridge(_states(2))
    assert mapped[0] is None
    assert [tuple(t.shape) for t in mapped[1] + mapped[2]] == [(2, 6)] * 4
    assert len(bridge.projections) == 4
    for tensor in mapped[1] + mapped[2]:
        assert np.abs(np.asarray(tensor.detach())).max() <= 1.0
