# Robot computer image: ROS 2 Humble, the pirl runtime (onnxruntime; TensorRT on a Jetson/NVIDIA base),
# pyrealsense2, and the pirl_ros / pirl_bringup workspace built with colcon.
#
#   docker build -f docker/robot.Dockerfile -t pirl-robot .
#   # on the robot (host network for DDS, devices for the RealSense):
#   docker run --rm -it --net=host --privileged -v /dev:/dev -v $PWD/runs:/work/runs pirl-robot \
#       ros2 launch pirl_bringup arm.launch.py engine:=/work/runs/demo/engine arm:=franka camera:=realsense robot:=jtc
#   # without hardware: the ManiSkill sim arm behind the same topics
#   docker run --rm -it pirl-robot ros2 launch pirl_bringup arm.launch.py engine:=/work/runs/demo/engine \
#       camera:=sim robot:=sim
#   # the launch tests (the whole graph on the sim arm) and the ROS-side pytest suite:
#   docker run --rm pirl-robot bash -lc "cd /opt/pirl && python3 -m pytest -q tests/ros"
#
# Build args: WITH_SIM=0 leaves out ManiSkill, torch and the export tools (a lean robot install: then
# camera:=sim robot:=sim and the launch tests are unavailable). ORT=onnxruntime-gpu for CUDA inference on an
# NVIDIA base image; for TensorRT, base this on an image that ships it (e.g. nvcr.io/nvidia/l4t-tensorrt on
# Jetson) and export with `pirl-export --tensorrt` on the robot.
ARG ROS_DISTRO=humble
FROM ros:${ROS_DISTRO}-ros-base
ARG ROS_DISTRO
ARG WITH_SIM=1
ARG ORT=onnxruntime

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-colcon-common-extensions libusb-1.0-0 \
        ros-${ROS_DISTRO}-control-msgs ros-${ROS_DISTRO}-std-srvs ros-${ROS_DISTRO}-trajectory-msgs \
        ros-${ROS_DISTRO}-launch-testing ros-${ROS_DISTRO}-launch-testing-ros ros-${ROS_DISTRO}-rosbag2 \
        mesa-vulkan-drivers libvulkan1 \
    && rm -rf /var/lib/apt/lists/*

COPY . /opt/pirl
WORKDIR /opt/pirl

# rclpy lives in the system Python, so pirl installs there too.
RUN python3 -m pip install --upgrade pip \
    && python3 -m pip install "${ORT}" \
    && python3 -m pip install -e ".[deploy,camera]" \
    && if [ "$WITH_SIM" = "1" ]; then \
         python3 -m pip install torch --index-url https://download.pytorch.org/whl/cpu \
         && python3 -m pip install -e ".[sim,export,dev]"; \
       fi

RUN . /opt/ros/${ROS_DISTRO}/setup.sh \
    && cd ros_ws && colcon build --symlink-install \
    && printf '%s\n' "source /opt/ros/${ROS_DISTRO}/setup.bash" "source /opt/pirl/ros_ws/install/setup.bash" \
        >> /root/.bashrc

ENTRYPOINT ["/bin/bash", "-lc", "source /opt/ros/$ROS_DISTRO/setup.bash && source /opt/pirl/ros_ws/install/setup.bash && exec \"$@\"", "--"]
CMD ["bash"]
