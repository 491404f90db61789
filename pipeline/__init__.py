"""The top layer: `pirl-train` (pipeline.cli) and the demos -> SFT -> PPO -> export -> evaluation pipeline
(pipeline.run), above training and deploy."""
