#!/usr/bin/env bash
# The GPU checks in one run: the device-marked tests on CUDA, then every benchmark with
# --device cuda (the speed figures in full, the study-like ones in --quick mode). Each step has
# its own time limit, so one that hangs or fails leaves the rest to run.
#
#   OUT=gpu-out bench/gpu_check.sh            # on a machine with a GPU, from the repository root
#   DEVICE=cpu QUICK=1 bench/gpu_check.sh     # a dry run of the script itself on the CPU
#
# PYTHON: the interpreter (default: the checkout's .venv/bin/python when there is one, else
# python3). The exit status is the number of steps that failed (0: every step passed).
#
# The steps' limits add up to more than 600 s: the first steps are the ones a run cut short must
# not miss; the rest run if time is left. Writes into $OUT: env.txt (device, driver, versions), tests.log, bench.log (the benchmarks'
# progress) and bench.jsonl (their JSON lines, one per benchmark). The data sets are read from
# $TEXTGYM_DATA; wheels in .whl/ (packages missing on the machine) are installed first.
set -u
FAILED=0
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
QUICK=$([ "${QUICK:-0}" = 1 ] && echo --quick)
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac  # the benchmarks run from bench/
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$PWD
export PYTHONUNBUFFERED=1
if [ -z "${TEXTGYM_DATA:-}" ] && [ -d "$ROOT/.data" ]; then  # the carried copy of the data, when there is one
    export TEXTGYM_DATA=$ROOT/.data
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME LIMIT_S STDOUT_FILE COMMAND...: run with a time limit; its status into bench.log
    local name=$1 limit=$2 out=$3
    shift 3
    local t0=$SECONDS
    echo "== $name: $*" >>"$OUT/bench.log"
    timeout "$limit" "$@" >"$out" 2>>"$OUT/bench.log"
    local rc=$?
    echo "== $name: rc=$rc, $((SECONDS - t0)) s" | tee -a "$OUT/bench.log"
    [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
    return $rc
}

bench() {  # bench NAME LIMIT_S SCRIPT ARGS...: the benchmark's JSON line (its last) into bench.jsonl
    local name=$1 limit=$2 script=$3
    shift 3
    if (cd bench && step "$name" "$limit" "$OUT/last.out" $PY "$script" --device "$DEVICE" "$@"); then
        tail -n 1 "$OUT/last.out" >>"$OUT/bench.jsonl"
    else
        FAILED=$((FAILED + 1))  # step counted it in the subshell, which forgets it
    fi
    rm -f "$OUT/last.out"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
    $PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
    $PY -c "import os; print('cpus', os.cpu_count())"
    $PY -m pip list 2>/dev/null | grep -i -E "^(torch|numpy|gymnasium|stable[-_]baselines3|sb3[-_]contrib|nltk) "
} >"$OUT/env.txt" 2>&1

step tests 120 "$OUT/tests.log" $PY -m pytest -m device --device "$DEVICE" -W ignore -p no:cacheprovider -rf --durations 15
R=${QUICK:---repeats 3}
bench discriminator 90 discriminator.py $R
bench protocol 200 paper_protocol.py ${QUICK:---mle 6 --d-pretrain 4 --adv 6}
bench protocol_tf32 120 paper_protocol.py ${QUICK:---mle 6 --d-pretrain 4 --adv 6} --tf32
[ "$DEVICE" = cuda ] && bench protocol_compile 150 paper_protocol.py ${QUICK:---mle 6 --d-pretrain 4 --adv 6} --tf32 --compile
[ "$DEVICE" = cuda ] && bench protocol_graphs 150 paper_protocol.py ${QUICK:---mle 6 --d-pretrain 4 --adv 6} --tf32 --compile --mc-graph
bench mc_cnn 60 mc_rollout.py --scorer cnn $R
bench profile 60 profile_step.py $R
[ "$DEVICE" = cuda ] && bench phases 120 profile_step.py --phases --tf32 --compile $R
bench mc_oracle 45 mc_rollout.py $R
if [ -n "$QUICK" ]; then bench env 60 env_throughput.py --quick; else
    bench env 45 env_throughput.py --sizes 256 1024 16384 --sync-max 256 $R; fi
bench sb3 40 sb3_throughput.py $R
# are resumed runs bit-identical under torch's CUDA defaults too (TF32, cuDNN's own algorithms)?
[ "$DEVICE" = cuda ] && step tests-cuda-defaults 60 "$OUT/tests-cuda-defaults.log" $PY -m pytest -m device --device "$DEVICE" --cuda-defaults \
    -W ignore -p no:cacheprovider -rf -k "resumes_identically or reference or completion"
bench infill 120 infill.py --quick --out "$OUT/runs-infill"
bench oracle 60 oracle.py --quick --runs "$OUT/runs-oracle"
bench bleu 20 bleu.py --quick
rm -rf "$OUT/runs-infill" "$OUT/runs-oracle"
echo "== done: $FAILED step(s) failed" | tee -a "$OUT/bench.log"
exit "$FAILED"
