"""The dependency-light core that training, deploy, calibration and the ROS nodes share: the observation
schema, normalisation, the tokenizer, the action space, camera.yaml, statistics, hashing and atomic file I/O.
numpy (and the standard library) only; nothing here imports training, deploy or torch."""
