#!/usr/bin/env bash
# One prepared check for a GPU machine (x86-64 or Jetson), in at most ~8 minutes:
#   1. nvidia-smi; 2. a Python environment (existing .venv, else a --system-site-packages venv,
#   filled from local wheels only — no network assumed); 3. which of tensorrt / cuda-python /
#   pycuda / onnxruntime-gpu import; 4. pytest -m "gpu or trt"; 5. a bundle (the argument, else
#   mmedge train + export + quantize fp16 of the tiny digits model) and its engines (mmedge build
#   fp32, fp16); 6. mmedge predict and eval --backend tensorrt, then mmedge bench: ONNX Runtime CPU
#   vs TensorRT vs TensorRT with CUDA graphs, fp32/fp16, batch 1 and 8, with sequential vs concurrent
#   encoders and each engine's H2D/compute/D2H from CUDA events; 7. a summary of every step.
#
#   bash benchmarks/gpu_check.sh [BUNDLE]
#
# Env: OUT (copy of the log, bench.json and the bench report go there), MMEDGE_WHEELS (folder of .whl files to
# install from, default .whl/), GPU_CHECK_BUDGET (seconds, default 470), PYTHON (default python3).
# Every step runs under `timeout`; a failing step is reported and the script goes on.
set -u -o pipefail
cd "$(dirname "$0")/.."

BUNDLE_ARG=${1:-}
BUDGET=${GPU_CHECK_BUDGET:-470}
WHEELS=${MMEDGE_WHEELS:-.whl}
PYTHON=${PYTHON:-python3}
START=$SECONDS
declare -a SUMMARY=()

if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu_check.log") 2>&1
fi

# ---- helpers -----------------------------------------------------------------------------
left() { echo $((BUDGET - (SECONDS - START))); }

# run_step NAME MAX_SECONDS CMD...: run under timeout (capped by the remaining budget), record.
run_step() {
    local name=$1 max=$2 rc limit
    shift 2
    limit=$(left)
    ((limit > max)) && limit=$max
    echo
    echo "=== ${name} (limit ${limit}s, $(( SECONDS - START ))s elapsed) ==="
    if ((limit < 5)); then
        echo "skipped: time budget spent"
        SUMMARY+=("SKIP    ${name} (no time left)")
        return 124
    fi
    # through bash -c so that exported shell functions work as commands too
    timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@"
    rc=$?
    if ((rc == 0)); then
        SUMMARY+=("OK      ${name}")
    elif [[ -n "${SOFT:-}" ]]; then  # a step with a fallback: worth a look, not a failure
        SUMMARY+=("WARN    ${name} (exit ${rc}; fallback used)")
    elif ((rc == 124 || rc == 137)); then
        echo "TIMEOUT after ${limit}s: ${name}"
        SUMMARY+=("TIMEOUT ${name} (${limit}s)")
    else
        SUMMARY+=("FAIL    ${name} (exit ${rc})")
    fi
    return $rc
}

mmedge() { PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c \
    'import sys; from mmedge.cli.main import app; sys.argv[0] = "mmedge"; app()' "$@"; }

# ---- 1. machine --------------------------------------------------------------------------
echo "mmedge GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(uname -srm) — budget ${BUDGET}s"
[[ -r /etc/nv_tegra_release ]] && echo "Jetson: $(head -n1 /etc/nv_tegra_release)"
run_step "nvidia-smi" 20 nvidia-smi

# ---- 2. python environment ---------------------------------------------------------------
make_env() {
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import numpy, onnx" 2>/dev/null; then
        echo "using existing .venv"
        return 0
    fi
    if [[ ! -x runs/venv-gpu/bin/python ]]; then
        echo "creating runs/venv-gpu (with system site-packages, so JetPack's / the system's tensorrt is visible)"
        "$PYTHON" -m venv --system-site-packages runs/venv-gpu || return 1
    fi
    if compgen -G "${WHEELS}/*.whl" >/dev/null; then
        echo "installing from local wheels in ${WHEELS} (no index):"
        ls "${WHEELS}"/*.whl
        runs/venv-gpu/bin/python -m pip install -q --no-index --find-links "$WHEELS" "${WHEELS}"/*.whl || return 1
    else
        echo "no wheels in ${WHEELS}: using what the system Python already has"
    fi
}
export -f make_env
export PYTHON WHEELS
run_step "python environment" 90 make_env
# the first interpreter with numpy+onnx+real TensorRT, else the first with numpy+onnx
PY=""
for need in "import numpy, onnx, tensorrt; tensorrt.Builder" "import numpy, onnx"; do
    for cand in .venv/bin/python runs/venv-gpu/bin/python "$(command -v "$PYTHON")"; do
        if [[ -z "$PY" && -x "$cand" ]] && "$cand" -c "$need" 2>/dev/null; then PY=$cand; fi
    done
done
PY=${PY:-$PYTHON}
export PY PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export -f mmedge
echo "python: $PY ($("$PY" --version 2>&1))"

# ---- 3. what imports ---------------------------------------------------------------------
probe() {
    "$PY" - <<'PYEOF'
import importlib

def show(label, fn):
    try:
        print(f"  {label:<16} {fn()}")
    except Exception as exc:  # report every failure, keep going
        print(f"  {label:<16} MISSING: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

def version(module):
    def get():
        importlib.import_module(module)
        from importlib.metadata import version as dist_version
        return dist_version(module)
    return get

def tensorrt():
    from mmedge.runtime.backends.tensorrt.env import require_tensorrt
    return require_tensorrt()

def onnxruntime():
    import onnxruntime as ort
    return f"{ort.__version__} providers={ort.get_available_providers()}"

def cuda(name):
    def probe():
        from mmedge.runtime.cuda.select import probe_cuda
        ok, why = probe_cuda(name)
        if not ok:
            raise RuntimeError(why)
        return why
    return probe

for label, fn in [("numpy", version("numpy")), ("onnx", version("onnx")), ("onnxruntime", onnxruntime),
                  ("tensorrt", tensorrt), ("cuda-python", cuda("cuda-python")), ("pycuda", cuda("pycuda")),
                  ("typer", version("typer")), ("rich", version("rich")), ("pytest", version("pytest"))]:
    show(label, fn)
try:
    from mmedge.runtime.backends.tensorrt.env import probe_environment
    print("  environment     ", probe_environment().to_json())
except Exception as exc:
    print(f"  environment      unavailable: {exc}")
PYEOF
}
export -f probe
run_step "imports" 60 probe

# ---- 4. GPU / TensorRT tests -------------------------------------------------------------
run_step "pytest -m 'gpu or trt'" 200 "$PY" -m pytest tests -m "gpu or trt" -q -rs -p no:cacheprovider \
    --continue-on-collection-errors

# ---- 5. a bundle with engines -------------------------------------------------------------
BUNDLE=""
BENCH_RESERVE=150  # seconds kept for the benchmark whatever train/export do
if [[ -n "$BUNDLE_ARG" ]]; then
    BUNDLE=$BUNDLE_ARG
    echo
    echo "=== bundle: ${BUNDLE} (given) ==="
elif (($(left) - BENCH_RESERVE > 90)) &&
     SOFT=1 run_step "mmedge train (tiny, digits)" $(( $(left) - BENCH_RESERVE - 40 )) \
        mmedge train --preset tiny --data digits --out runs/gpu &&
     SOFT=1 run_step "mmedge export" $(( $(left) - BENCH_RESERVE )) mmedge export runs/gpu --out export/gpu; then
    BUNDLE=export/gpu
    SOFT=1 run_step "mmedge quantize fp16" $(( $(left) - BENCH_RESERVE )) \
        mmedge quantize export/gpu --precision fp16 --samples 32
else
    echo
    echo "train/export unavailable (or no time for them): no bundle to benchmark"
fi
PRECISIONS=fp32
if [[ -n "$BUNDLE" ]]; then
    run_step "mmedge build fp32" 120 mmedge build "$BUNDLE" --precision fp32 --workspace 1
    SOFT=1 run_step "mmedge build fp16" 120 mmedge build "$BUNDLE" --precision fp16 --workspace 1 && PRECISIONS=fp32,fp16
fi

# ---- 6. predict, eval and benchmark through the CUDA-streamed runtime --------------------
if [[ -n "$BUNDLE" ]]; then
    run_step "mmedge predict --backend tensorrt" 60 mmedge predict "$BUNDLE" --backend tensorrt --text "an odd number" --json
    run_step "mmedge eval --backend tensorrt" 90 mmedge eval "$BUNDLE" --backend tensorrt --precision "$PRECISIONS"
    BENCH_ARGS=(--backends onnxruntime,tensorrt,tensorrt-cudagraph --precisions "$PRECISIONS" --batch 1,8
                --iters 50 --warmup 5)
    [[ -n "${OUT:-}" ]] && BENCH_ARGS+=(--json "$OUT/bench.json" --report "$OUT/bench")
    run_step "mmedge bench (ONNX Runtime CPU vs TensorRT)" 180 mmedge bench "$BUNDLE" "${BENCH_ARGS[@]}"
fi

# ---- 7. summary --------------------------------------------------------------------------
echo
echo "=== summary ($(( SECONDS - START ))s) ==="
printf '%s\n' "${SUMMARY[@]}"
[[ -n "${OUT:-}" ]] && echo "log: $OUT/gpu_check.log"
# exit status: non-zero if any step failed or timed out
for line in "${SUMMARY[@]}"; do [[ $line == OK* || $line == SKIP* || $line == WARN* ]] || exit 1; done
exit 0
