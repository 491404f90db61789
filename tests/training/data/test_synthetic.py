import numpy as np

from training.data.synthetic import COLORS, make_synthetic_reach, reach_success


def test_expert_reaches_the_named_square_and_the_image_shows_it():
    data, camera = make_synthetic_reach(32, horizon=6, image_size=64, seed=4)
    assert camera == "base" and data.images.shape == (32, 64, 64, 3) and data.actions.shape == (32, 6, 3)
    assert reach_success(data.actions, data.target).all()
    np.testing.assert_allclose(data.actions[:, 0, :2], data.state[:, :2] + (data.target - data.state[:, :2]) / 6,
                               atol=1e-5)
    for i in range(32):
        colour = next(c for c in COLORS if c in data.instruction[i])
        px, py = np.round((data.target[i] + 1) / 2 * 63).astype(int)
        assert tuple(data.images[i, py, px]) == COLORS[colour], "the named square is drawn at the target"
    # Reaching the other square is a failure.
    wrong = data.actions.copy()
    wrong[:, -1, :2] = -data.target
    assert not reach_success(wrong, data.target).any()
