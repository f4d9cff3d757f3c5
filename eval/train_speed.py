"""`python -m eval train-speed`: whole training steps, sigmoid vs softmax (time, tokens/s, MFU).

  python -m eval train-speed --config=configs.base --set data.max_len=8192 --set data.batch_size=8 \
      --out=runs/train_speed
  python -m eval train-speed --config=configs.stress_160m --padding=0.5 --set model.remat=dots

Times `train_step` of the config for both attentions in one process, their samples alternating
(logic and FLOP count: sigjax/evaluation/_speed.py), prints a table and writes train_speed.json
(with date, device, commit, versions and this command) and train_speed.md under --out.
"""

import argparse
import json
import pathlib
import shlex
import sys

from eval._overrides import load_config, override, parse_sets


def main(argv, prog: str = "python -m eval train-speed"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs.base", help="config module or file (configs/x.py)")
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    p.add_argument("--steps", type=int, default=20, help="steps per timed sample")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    p.add_argument(
        "--repeats", type=int, default=3, help="samples per attention, alternated (median reported)"
    )
    p.add_argument(
        "--padding",
        type=float,
        default=0.0,
        help="share of padded tokens: cell lengths spread evenly over [(1-2p) max_len, max_len]",
    )
    p.add_argument("--out", default="runs/train_speed")
    args = p.parse_args(argv)
    from sigjax.evaluation._speed import compare_train_speed, speed_markdown

    config = load_config(args.config)
    override(config, parse_sets(args.set))
    result = compare_train_speed(
        config, steps=args.steps, warmup=args.warmup, repeats=args.repeats, padding=args.padding
    )
    result["command"] = f"{prog} {shlex.join(argv)}".strip()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(result, indent=1))
    text = speed_markdown(result)
    flags = f", XLA_FLAGS `{result['xla_flags']}`" if result.get("xla_flags") else ""
    (out / "train_speed.md").write_text(
        f"{result['date']}, {result['device']}, commit {result['commit']}{flags}\n\n"
        f"`{result['command']}`\n\n{text}\n"
    )
    print(text)
    print(f"wrote {out / 'train_speed.json'} and {out / 'train_speed.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
