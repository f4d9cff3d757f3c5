"""Trains a sigjax model.

  python -m train --config=configs/X.py --workdir=DIR [--config.field=value ...]

A rerun with the same workdir resumes from its latest intact checkpoint (a finished run says
"already at step N of N; nothing to do"). Bad input (unknown config field, bad value, unusable
workdir, another config or vocabulary on resume) and a non-finite step end with one line
"error: ..." on stderr and exit status 2.
"""

import logging
import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py).")
flags.DEFINE_string("workdir", None, "Run directory: config, vocabulary, metrics, checkpoints.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    from sigjax.training import NonFiniteError, train_and_evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sigjax").setLevel(logging.INFO)
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every file it renames.
    # "Unable to initialize backend 'tpu'" on every machine without one.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        config = flags.FLAGS.config
        config.keys()  # A missing or broken config file only fails on first use.
    except OSError as e:
        print(f"error: --config: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    try:
        result = train_and_evaluate(config, flags.FLAGS.workdir)
    except (ValueError, FileNotFoundError, NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(" ".join(f"{k}={v}" for k, v in result.items() if v is not None))


def parse_flags(argv):
    """absl parsing, with bad overrides (unknown field, wrong type) as a one-line error."""
    if any(a in ("-h", "--help", "-?") for a in argv[1:]):
        # absl's own --help exits 1 and knows no -h: usage on stdout, exit 0, as argparse does.
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        from sigjax.training import unknown_config_field

        message = unknown_config_field(argv) or f"bad flag: {' '.join(str(e).split())}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
