# Two entry points, each installing what it needs into .venv on first use:
#   make demo   - the main job on the embedded CPU default
#   make test   - the test suite (with `make ros-check`: colcon build + type check of ros_ws)
VENV   ?= .venv
PYTHON ?= python3
# torch as the machine provides it: 2.13.0 is the local CPU wheel on our build machines.
TORCH_SPEC ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pirl-installed
# ROS 2 itself cannot be installed from PyPI; this venv holds colcon (to build ros_ws) and rclpy's Python
# layer and the message classes as type information (rclpy-intellisense, common-interfaces-intellisense) for
# basedpyright. Kept apart from .venv so that no test there mistakes the stubs for a ROS install.
ROS_VENV  ?= .venv-ros
ROS_STAMP := $(ROS_VENV)/.pirl-installed

.PHONY: demo test ros-check bench clean

$(STAMP): pyproject.toml Makefile scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[train,sim,libero,log,export,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pirl-train pipeline --config configs/cpu_demo.yaml --out runs/demo

$(ROS_STAMP): Makefile
	test -x $(ROS_VENV)/bin/python || $(PYTHON) -m venv $(ROS_VENV)
	$(ROS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ROS_VENV)/bin/python -m pip install --quiet "colcon-core>=0.15" "colcon-ros>=0.5" colcon-python-setup-py \
		"rclpy-intellisense==1.2.0" "common-interfaces-intellisense==0.1.0" "basedpyright>=1.20" "numpy>=1.24" pyyaml \
		"scipy>=1.10"
	touch $(ROS_STAMP)

# colcon build of the ROS 2 workspace (ament_python) and a type check of its nodes and launch files.
ros-check: $(ROS_STAMP)
	rm -rf build/ros_ws
	$(ROS_VENV)/bin/colcon --log-base build/ros_ws/log build --base-paths ros_ws/src \
		--build-base build/ros_ws/build --install-base build/ros_ws/install
	cd ros_ws && ../$(ROS_VENV)/bin/basedpyright --pythonpath ../$(ROS_VENV)/bin/python

test: $(STAMP) ros-check
	$(VENV)/bin/ruff check core training deploy calibration pipeline tests benchmarks ros_ws scripts
	$(PY) -m pytest -q --durations=15 tests

bench: $(STAMP)
	$(PY) benchmarks/policy_latency.py

clean:
	rm -rf $(VENV) $(ROS_VENV) runs build/ros_ws
