# Device call of 2026-12-01 (second session), nvidia-h200: compiled GPU suite, then the fused-backward probe.
# Needs the carried wheels (.whl, see docs/probes/README.md).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 -c "import pytest, hypothesis" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/opt/*.whl
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 4"
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices())"
timeout ${TESTS_S:-280} python3 -m pytest -q -p no:cacheprovider -m gpu $N 2>&1 | tee $OUT/gpu_tests.log | tail -40
timeout ${PROBE_S:-290} python3 docs/probes/fused_bwd.py --budget_s=$(( ${PROBE_S:-290} - 20 )) 2>&1 | grep -v -i warn | tee $OUT/fused.log | tail -60
