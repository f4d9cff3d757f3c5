"""The attention kernel benchmark and tuner, split by concern.

specs (shapes, FLOPs, the argument specs shared with the kernel tests), timing, measure (check
against float32, then time; peak memory), peers (cuDNN softmax, TritonSigmoid subprocess), report
(kernels.json with provenance, kernels.md, kernels.png), tune (KernelConfig sweeps into the JSON
tables), run (the benchmark), cli (flags). Entry point: `python -m eval kernels`.
"""
