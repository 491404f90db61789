"""Simulators behind one vectorized env contract (see `training.envs.base`)."""
