"""Deployment, split by where each part runs:

    deploy.robot    the robot runtime: engine loading and inference (numpy + onnxruntime / TensorRT), chunk
                    execution, safety limits, the arm controller, remote inference, camera I/O
    deploy.export   checkpoint -> engine (torch, onnx): the training machine
    deploy.sim      the engine closed loop in simulation: evaluation and the dry run of the robot graph
    deploy.trials   real-world trial logs and reports set against simulation
"""
