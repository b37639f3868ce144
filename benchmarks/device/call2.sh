set -x
. .gpu/setup.sh
test -f /tmp/keep/minilm/model.safetensors || { echo "NO STASHED MODEL: the machine of call 1 is gone"; exit 3; }
L=/tmp/levers
SENTITUNE_DATA=$PWD/.gpu/imdb SENTITUNE_MODEL=/tmp/keep/minilm timeout 540 python3 benchmarks/imdb_levers.py $L ${LEVER_STEPS:+--steps $LEVER_STEPS} 2>&1 | grep -vE "it/s\]|s/it\]" | tail -40
cp $L/levers.md $L/levers.json $OUT/ 2>/dev/null
(cd $L && tar czf $OUT/levers_runs.tgz logs adapted/adapt.json adapted/*.yaml $(ls -d runs/*/ 2>/dev/null | sed 's|$|metrics.json|') $(ls -d runs/*/ | sed 's|$|config.yaml|') 2>/dev/null)
test -f $L/runs/a/metrics.json && timeout 100 python3 benchmarks/explain_faithfulness.py --model $L/runs/a --n 500 --data .gpu/imdb/test.parquet --batch-size 16 2>&1 | grep -vE "it/s\]" | tee $OUT/faithfulness.txt | tail -12
ls -la $OUT
