"""`python -m eval`: embed, score, compare, stability, demo, study, kernels."""
