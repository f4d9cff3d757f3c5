"""python -m eval.kernels ...: the kernel benchmark and tuner (see `python -m eval.kernels -h`)."""

from eval.kernels.cli import main

if __name__ == "__main__":
    main()
