"""Times TritonSigmoid (PyPI `triton-sigmoid`, torch) on the benchmark's shapes; run as a subprocess.

  python -m sigjax.evaluation._triton_sigmoid_runner '<json list of configs>'

Prints one JSON object per config. Lengths are drawn exactly as the JAX side draws them (same seed).
"""

import json
import sys

import numpy as np


def main(configs):
    try:
        import torch
        import triton_sigmoid
    except Exception as e:  # Optional extra: report why it is missing and stop.
        print(json.dumps({"unavailable": f"{type(e).__name__}: {e}"}), flush=True)
        return
    dev = "cuda"
    for c in configs:
        try:
            b, t, n, h = c["batch"], c["seq_len"], c["heads"], c["head_dim"]
            gen = torch.Generator(device=dev).manual_seed(0)
            q, k, v = (torch.randn(b, t, n, h, device=dev, dtype=torch.bfloat16, generator=gen,
                                   requires_grad=c["mode"] == "fwdbwd") for _ in range(3))
            lens = torch.tensor(np.asarray(c["lengths"], np.int32), device=dev)
            padded = min(c["lengths"]) < t

            def fwd():
                if padded:
                    return triton_sigmoid.sigmoid_attention_padded(
                        q, k, v, seq_lens_k=lens, seq_lens_q=lens, is_causal=c["causal"])
                return triton_sigmoid.sigmoid_attention(q, k, v, is_causal=c["causal"])

            do = torch.randn(b, t, n, h, device=dev, dtype=torch.bfloat16, generator=gen)

            def step():
                out = fwd()
                if c["mode"] == "fwdbwd":
                    torch.autograd.grad(out, (q, k, v), do)

            for _ in range(3):
                step()
            torch.cuda.synchronize()
            times = []
            for _ in range(c["reps"]):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            print(json.dumps({**c, "impl": "triton_sigmoid", "time_s": float(np.median(times))}), flush=True)
        except Exception as e:
            print(json.dumps({**c, "impl": "triton_sigmoid", "error": f"{type(e).__name__}: {e}"[:400]}),
                  flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
