"""Training-success bookkeeping over a rollout's finished episodes."""

import math

from training.envs.base import EpisodeStats
from training.ppo.rollout import success_by_task, success_rate


def _ep(task: str, success: bool) -> EpisodeStats:
    return EpisodeStats(task=task, instruction="push the cube", seed=0, length=10, ret=1.0, success=success)


def test_multi_task_batches_report_each_task_apart():
    episodes = [_ep("PushCube-v1", True), _ep("PushCube-v1", False), _ep("PullCube-v1", True),
                _ep("PushCube-v1", True)]
    assert success_rate(episodes) == 0.75
    assert success_by_task(episodes) == {"train_success/PullCube-v1": 1.0,
                                         "train_success/PushCube-v1": 2 / 3}


def test_one_task_or_no_episode_adds_nothing():
    assert success_by_task([_ep("PushCube-v1", True), _ep("PushCube-v1", False)]) == {}
    assert success_by_task([]) == {} and math.isnan(success_rate([]))
