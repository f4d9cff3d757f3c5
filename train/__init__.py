"""`python -m train`: the training entry point."""
