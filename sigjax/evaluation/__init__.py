"""Evaluation of cell embeddings, run comparisons, stability plots and kernel benchmarks."""
