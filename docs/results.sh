#!/usr/bin/env bash
# docs/results.sh — reruns every experiment docs/RESULTS.md reports, on the
# shipped teacher, into build/results (resuming whatever is already there):
#   students: GDN (the main job's, `dtr run`) and GLA, 393,216 tokens each;
#   the greedy search for each block on lm (perplexity, tolerance 10%), cloze
#   and recall at 2 pairs (accuracy, tolerance 0.03), with the plain search once
#   for the layer-forward comparison;
#   decode speed against the number of replaced layers at 512..65,536 context.
# Needs tools/quickstart (or tools/test) to have built dtr and prepared build/data.
# About 2 minutes on the 2-core lavapipe machine (35 with the 6-layer teacher of
# 2026-11-23). --no-decode skips the decode table, which depends on the
# teacher's shape only, not on its weights.
set -euo pipefail
cd "$(dirname "$0")/.."
dtr=${DTR:-build/dtr}
out=build/results
mkdir -p "$out"
tasks=build/data/tasks
# recall at 2 pairs, the count the teacher was trained on (tasks/ holds 8 pairs)
[ -f build/data/tasks2/recall.jsonl ] ||
  "$dtr" tasks make --data build/data --out build/data/tasks2 --recall-pairs 2
for block in gdn gla; do
  dir="$out/$block"
  mkdir -p "$dir"
  resume=()
  [ -f "$dir/students/checkpoint.safetensors" ] && resume=(--resume)
  "$dtr" distill --model models/dtr-tiny --data build/data/train.txt --block "$block" \
    --tokens 393216 --batch 8 --out "$dir/students" "${resume[@]}" \
    2>&1 | tee "$dir.distill.log"
  for task in lm cloze recall; do
    tol=0.03
    [ "$task" = lm ] && tol=10%
    limit=()
    [ "$task" = lm ] && limit=(--limit 80)
    [ -f "$dir/$task/trajectory.json" ] && continue # done before
    file="$tasks/$task.jsonl"
    [ "$task" = recall ] && file=build/data/tasks2/recall.jsonl
    "$dtr" replace --model models/dtr-tiny --students "$dir/students" \
      --task "$file" --tolerance "$tol" "${limit[@]}" \
      --out "$dir/$task" --speed-ctx none | tee "$dir/$task.log"
  done
done
[ -f "$out/gdn/lm-plain/trajectory.json" ] ||
  "$dtr" replace --model models/dtr-tiny --students "$out/gdn/students" \
  --task "$tasks/lm.jsonl" --tolerance 10% --limit 80 --plain --out "$out/gdn/lm-plain" \
  --speed-ctx none | tee "$out/gdn/lm-plain.log"
[ "${1:-}" = --no-decode ] && exit 0
# every prefix of the layers: none replaced, layer 0, layers 0-1, ... all of them
nl=$(grep -o '"num_hidden_layers": *[0-9]*' models/dtr-tiny/config.json | grep -o '[0-9]*$')
prefixes=("") p=""
for ((l = 0; l < nl; l++)); do
  p=${p:+$p,}$l
  prefixes+=("$p")
done
for layers in "${prefixes[@]}"; do
  rep=()
  [ -n "$layers" ] && rep=(--replace "$layers")
  "$dtr" bench decode --model models/dtr-tiny --ctx 512,2048,16384,65536 --steps 64 \
    "${rep[@]}" | tee "$out/decode-${layers:-none}.log"
done
