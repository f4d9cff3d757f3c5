# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-fifth session. <= 480 s. One call that does
# what matters most on the card that comes, for a session with device time for one call only:
# - an H200 (the targets' card, not lent since run 18): the causal check of run39_h200_only.sh (H=128 and 64,
#   T=4096, 4 rounds; C_END), then whole steps at 8K tokens (steps8k.sh: 161.5M and base, dense; END);
# - an H100: both compiled attention suites with `-v --durations=20` (run48_first.sh's command, TEST_END; run 25's
#   290 s limit stopped one test, unnamed), then TritonSigmoid beside sigjax and cuDNN at T=4096, H=128 and 64,
#   dense and 50% padding (run50_rest.sh's first stage; END).
#   OUT=... bash docs/probes/run51_one_call.sh      (carry .whl with .whl/opt and the triton_sigmoid wheel)
WHEELS=".whl/*.whl .whl/opt/*.whl" source docs/probes/device_env.sh
END=${END:-465}
source docs/probes/h200_causal.sh
if [ $ON_H200 = 1 ]; then
  source docs/probes/steps8k.sh
else
  timeout $(left ${TEST_END:-330}) python3 -m pytest -v -rs --durations=20 -p no:cacheprovider -m gpu -n 8 \
    tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py -k "not Interpret" 2>&1 \
    | grep -v -i warn > $OUT/tests.log
  echo "pytest rc ${PIPESTATUS[0]}"; grep -c PASSED $OUT/tests.log; grep -E "FAILED|ERROR" $OUT/tests.log | head
  tail -28 $OUT/tests.log
  timeout $(left $END) python3 -m eval kernels --out=$OUT/ts4k --head_dims=128,64 --seq_lens=4096 \
    --impls=pallas,cudnn,triton_sigmoid --modes=fwd,fwdbwd --padding=0,0.5 --causal=0 --memory_impls= --rounds=2 \
    --triton_share=0.4 --budget_s=$(left $(( END - 10 ))) 2>&1 | grep -v -i warn | tail -20
fi
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
