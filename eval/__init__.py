"""`python -m eval`: embed, score, compare, stability, kernels, demo."""
