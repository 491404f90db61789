# Cluster image for pirl training: CUDA, ManiSkill3 (GPU simulation and rendering), LIBERO, W&B.
#
#   docker build -f docker/train.Dockerfile -t pirl-train .
#   docker run --gpus all --rm -v $PWD/runs:/work/runs -e WANDB_API_KEY pirl-train \
#       pirl-train pipeline --config configs/maniskill_gpu.yaml --out runs/ms_gpu
#   # several GPUs: docker run --gpus all ... pirl-train torchrun --nproc-per-node 8 /opt/venv/bin/pirl-train ppo ...
#
# The NVIDIA container toolkit exposes the driver's Vulkan ICD to the container (NVIDIA_DRIVER_CAPABILITIES
# must include graphics), which SAPIEN needs for rendering; EGL serves MuJoCo (LIBERO).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_DRIVER_CAPABILITIES=all \
    MUJOCO_GL=egl \
    PYOPENGL_PLATFORM=egl \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update && apt-get install -y --no-install-recommends \
        software-properties-common git ffmpeg libvulkan1 vulkan-tools libegl1 libgl1 libglib2.0-0 \
    && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
    && rm -rf /var/lib/apt/lists/*

# The NVIDIA Vulkan ICD description (the driver library itself comes from the host at run time).
RUN mkdir -p /usr/share/vulkan/icd.d && printf '%s\n' \
    '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3"}}' \
    > /usr/share/vulkan/icd.d/nvidia_icd.json

RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cu124"
RUN pip install --upgrade pip && pip install "${TORCH_SPEC}" --index-url "${TORCH_INDEX}"

WORKDIR /work
COPY pyproject.toml README.md ./
COPY core ./core
COPY training ./training
COPY pipeline ./pipeline
COPY deploy ./deploy
COPY calibration ./calibration
COPY configs ./configs
COPY benchmarks ./benchmarks
RUN pip install -e ".[train,sim,libero,log]"

CMD ["pirl-train", "--help"]
