"""GPU kernels (Pallas, lowered through Triton). Nothing here knows about models or configs."""
