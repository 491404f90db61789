"""Few-shot flow-matching SFT: `config` (SFTConfig), `train` (the loop on prepared demos), `run` (`pirl-train
sft`: datasets -> policy -> checkpoint)."""

from training.sft.config import SFTConfig
from training.sft.train import DemoTensors, beta_flow_time, prepare_demos, train_sft, validation_loss

__all__ = ["DemoTensors", "SFTConfig", "beta_flow_time", "prepare_demos", "train_sft", "validation_loss"]
