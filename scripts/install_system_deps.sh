#!/usr/bin/env bash
# System packages the simulators and the camera code need, on Debian/Ubuntu. Idempotent; uses sudo when not root.
#
# ManiSkill3 (SAPIEN) needs a Vulkan device even for state observations. Without a GPU that is Mesa's
# lavapipe (software Vulkan). SAPIEN rejects the Mesa 22.x of Debian bookworm, so on bookworm we take
# mesa-vulkan-drivers from bookworm-backports (25.x). On other systems we install the distribution's own.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_system_deps: need root or sudo to install mesa-vulkan-drivers" >&2; exit 1; fi
fi

mesa_major() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+).*/\1/' || true
}

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: no apt-get; install a Vulkan driver (Mesa >= 23 lavapipe, or your GPU's) yourself" >&2
  exit 0
fi

# pyrealsense2 (camera playback tests, the robot's RealSense node) loads libusb-1.0 at import; the trials
# report's test renders its HTML page in headless Chromium.
missing=""
ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0" || missing="$missing libusb-1.0-0"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

major="$(mesa_major)"
if [ -n "$major" ] && [ "$major" -ge 23 ] && [ -e /usr/share/vulkan/icd.d/lvp_icd.json ]; then
  exit 0  # already there
fi

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
export DEBIAN_FRONTEND=noninteractive
if [ "$codename" = "bookworm" ]; then
  list=/etc/apt/sources.list.d/pirl-bookworm-backports.list
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "install_system_deps: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
