#!/usr/bin/env bash
# Install every Debian package sp needs to build and test. Idempotent; quiet when all are present.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libmujoco-dev            # MuJoCo 2.2.2 physics and rendering
  libegl-dev libegl-mesa0  # headless OpenGL through EGL (Mesa llvmpipe)
  libpng-dev libgif-dev    # PNG and GIF output
  libopenblas-dev          # sgemm for the neural-network core
  libhdf5-dev hdf5-tools   # datasets (h5dump/h5ls for inspection tests)
  libcjson-dev             # JSON (results, safetensors metadata, VLM replies)
  libcurl4-openssl-dev     # VLM client
  libcriterion-dev         # unit tests
  libvlfeat-dev            # SIFT keypoints and descriptors (match: shape similarity)
  python3-pip patch        # scripts/get-metaworld-assets.sh (Meta-World's scenes from PyPI)
  chromium fonts-dejavu-core  # headless browser: the test that renders sp report's page
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
