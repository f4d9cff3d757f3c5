# Device call (nvidia-h200, or one H100), issue 14, thirty-first session. ~580 s.
# The H=64 backward's weight gradient from w = tanh(logit / 2) (`fused_backward(tanh_ds=True)`: dp (1 - w^2) = 4 ds,
# two operations per element instead of three) and dq_rows with 3 stages: 1. ptxas reports (registers, spills) of
# dq_rows with and without tanh_ds; 2. `dq_rows.py` with VARIANTS=rows,rows_tds,rows_s3,rows_s3_tds: compiled checks,
# then the kernels alone, 3 rounds, H=64, T=4K/8K/16K dense and 8K with 50% padding; 3. the compiled suite of
# test_hopper.py (every one-GPU test of the tree). Stage deadlines PROBE_END, END.
#   OUT=... bash docs/probes/run42_tanh_ds.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
for v in '{"shared_dq":true,"dq_rows":true}' '{"shared_dq":true,"dq_rows":true,"tanh_ds":true}'; do
  MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_bwd.py 64 "$v" > /tmp/p.log 2>&1
  echo "== 64 $v"; grep -a -i -E "registers|spill|serializ|finite" /tmp/p.log | cut -c1-200 | sort | uniq | head -6
done 2>&1 | tee $OUT/ptxas.txt
VARIANTS=${VARIANTS:-rows,rows_tds,rows_s3,rows_s3_tds} ROUNDS=${ROUNDS:-3} OUT=$OUT timeout $(left ${PROBE_END:-380}) \
  python3 docs/probes/dq_rows.py $(( ${PROBE_END:-380} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "\"kind\": \"time\"" | cut -c1-400 | tail -24
timeout $(left ${END:-580}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_hopper.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
