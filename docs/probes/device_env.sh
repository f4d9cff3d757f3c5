# Sourced first by device scripts (thirty-seventh session on): installs the carried wheels ($WHEELS, default
# .whl/*.whl; add .whl/opt/*.whl for pytest) into /tmp/site, sets the environment, writes the GPU's name to
# $OUT/gpu.txt and defines left DEADLINE (seconds until DEADLINE seconds after the start, at least 1).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  ${WHEELS:-.whl/*.whl} || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
