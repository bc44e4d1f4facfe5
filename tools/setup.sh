# tools/setup.sh — sourced by tools/quickstart and tools/test: installs the Debian
# packages dtr needs when any is missing, then configures and builds into build/.
# Idempotent: with everything present it costs a dpkg query and an up-to-date make.

DTR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DTR_BUILD=${DTR_BUILD:-$DTR_ROOT/build}
DTR_PACKAGES=(build-essential cmake pkg-config
  libvulkan-dev libvulkan-volk-dev glslc libshaderc-dev spirv-tools
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools libopenblas-dev
  libpcre2-dev libjansson-dev)

dtr_install() {
  local missing=()
  for p in "${DTR_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  # node and npm run the tokenizer conformance oracle; a machine may already have
  # them from elsewhere (nodesource), so look for the commands, not the packages.
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dtr: installing ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "dtr: need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=sudo
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" || return 1
}

dtr_build() {
  local werror=${1:-OFF}
  cmake -S "$DTR_ROOT" -B "$DTR_BUILD" -DCMAKE_BUILD_TYPE=Release -DDTR_WERROR="$werror" \
    >/dev/null || return 1
  cmake --build "$DTR_BUILD" -j"$(nproc)" || return 1
}
