# Device call (nvidia-h200, or one H100), issue 14, thirty-second session. ~420 s.
# q times scale / 2 and the scores' product started at the halved bias (`q_scaled` of fused_forward and
# fused_backward: tanh takes the product as it is, one multiply-add per weight less): 1. ptxas reports (registers,
# spills) of the H=64 backward (dq_rows, tanh_ds) and forward with and without it; 2. `dq_rows.py` with
# VARIANTS=rows_tds,rows_tds_qs (compiled checks, then the backward alone, 3 rounds, order rotating, H=64,
# T=4K/8K/16K dense and 8K with 50% padding); 3. `fwd_scaled.py` (compiled checks, then the forward alone, the same
# shapes and H=128 at 8K). Stage deadlines BWD_END, END.
#   OUT=... bash docs/probes/run44_scaled_q.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
rows='"shared_dq":true,"dq_rows":true'
for probe in "bwd {$rows}" "bwd {$rows,\"q_scaled\":true}" "fwd {}" "fwd {\"q_scaled\":true}"; do
  set -- $probe
  MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_$1.py 64 "$2" > /tmp/p.log 2>&1
  echo "== $1 64 $2"; grep -a -i -E "registers|spill|serializ|finite" /tmp/p.log | cut -c1-200 | sort | uniq | head -6
done 2>&1 | tee $OUT/ptxas.txt
CHECKS=last VARIANTS=rows_tds,rows_tds_qs ROUNDS=${ROUNDS:-3} OUT=$OUT timeout $(left ${BWD_END:-300}) \
  python3 docs/probes/dq_rows.py $(( ${BWD_END:-300} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "\"kind\": \"time\"" | cut -c1-400 | tail -16
ROUNDS=${ROUNDS:-3} OUT=$OUT timeout $(left ${END:-420}) python3 docs/probes/fwd_scaled.py $(( ${END:-420} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "\"kind\": \"time\"" | cut -c1-400 | tail -16
