# Device call (nvidia-h200, or one H100), issue 14, twenty-seventh session. ~100 s. Ran at aa8056b (run 19,
# call 4): run30_regs.sh's ptxas and timing stages alone (its compiled tests had passed in call 3), the
# register split 240/24 first, then the default, on the same machine.
#   OUT=... bash docs/probes/run31_regs_only.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
sed -n '/^for v in/,/tee \$OUT\/ptxas_regs.txt/p;/^for regs in/,$p' docs/probes/run30_regs.sh > /tmp/tail.sh
sed -i 's/for regs in "" 240,24/for regs in 240,24 ""/' /tmp/tail.sh
OUT=$OUT bash /tmp/tail.sh
