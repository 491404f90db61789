"""The engine closed loop in simulation: `eval` (pirl-eval-engine), `arm` (the ManiSkill arm behind the robot
graph), `dry_run` (the robot graph in one process)."""
