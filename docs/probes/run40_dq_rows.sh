# Device call (nvidia-h200, or one H100), issue 14, thirtieth session. ~380 s.
# The H=64 backward with one dq share per program split by query rows, and with its dq product a step late
# (`dq_rows.py`): 1. ptxas reports (registers, spills) of the table variant, dq_rows, dq_rows deferred;
# 2. `dq_rows.py`: compiled checks, then the kernels alone, 4 rounds, H=64, T=4K/8K/16K dense and 8K with 50%
# padding; 3. the compiled dq_rows/defer tests of test_hopper.py. Stage deadlines PROBE_END, END.
# Ran at b7e2217 (run 22, call 1; its third ptxas report was of dq_rows with defer_dq, removed since; now 3 stages).
#   OUT=... bash docs/probes/run40_dq_rows.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
for v in '{}' '{"shared_dq":true,"dq_rows":true,"block_q":128}' '{"shared_dq":true,"dq_rows":true,"block_q":128,"stages":3}'; do
  MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_bwd.py 64 "$v" > /tmp/p.log 2>&1
  echo "== 64 $v"; grep -a -i -E "registers|spill|serializ|finite" /tmp/p.log | cut -c1-200 | sort | uniq | head -6
done 2>&1 | tee $OUT/ptxas.txt
OUT=$OUT timeout $(left ${PROBE_END:-290}) python3 docs/probes/dq_rows.py $(( ${PROBE_END:-290} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "\"kind\": \"time\"" | cut -c1-400 | tail -22
timeout $(left ${END:-380}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 4 \
  tests/attention/test_hopper.py -k "(dq_rows or defer) and not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
