"""Camera-to-sim calibration (`pirl-calibrate`): intrinsics from ChArUco views, hand-eye (camera pose in the
robot base or end-effector frame), camera.yaml, and a render-and-compare check against the simulator."""
