"""The flow-matching VLA policy: model, samplers, chains, tokenizer, normalization and checkpoints."""
