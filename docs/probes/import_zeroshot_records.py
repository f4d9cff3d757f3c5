"""The six LR 1e-3 runs of docs/results.md "Zero-shot at GPU size" as records of the zero-shot grid.

Those runs (configs/pretrain_pooled.py, seeds 0-2, both attentions) were trained and scored with
docs/probes/run10_pooled.sh before configs/zeroshot_grid.py existed. Their config.json equals the
grid's cell for LR 1e-3 in every field but data.path (checked here, or nothing is written), so
they are that cell's runs and need not be trained again. Each gets, under
docs/data/zeroshot_grid/pooled/<attention>_lr0.001_seed<seed>/: config.json and zeroshot.json/.md
(copied), scores.json (the final validation loss from its metrics and the zero-shot rows, as the
grid's scoring writes them) and run.json (what is known of the run: commit, device, end date,
command, `imported_from`; no per-run times, which were not recorded per run). The metrics stay
in the original record (`imported_from`). Run from the repository root:

  python docs/probes/import_zeroshot_records.py
"""

import json
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from configs import zeroshot_grid  # noqa: E402
from sigjax.evaluation import Cell, run_config, zeroshot_record_scores  # noqa: E402
from sigjax.training._checkpoint import config_differences  # noqa: E402

SOURCE = pathlib.Path("docs/data/zeroshot_base")
# From docs/results.md "Zero-shot at GPU size": seed 0 in the ninth session, seeds 1-2 in the tenth.
COMMITS = {0: "ef9f242", 1: "2d08bce", 2: "2d08bce"}
DEVICE = "GPU (NVIDIA H200) x1, 16 cores, x86_64; jax 0.11.2"
COMMAND = (
    "python -m train --config=configs/pretrain_pooled.py --workdir=/tmp/pooled_{a}_s{s} "
    "--config.model.attention={a} --config.data.path=/tmp/pooled.h5ad --config.seed={s} "
    "--config.data.seed={s} --config.train.progress_bar=False; python -m eval zeroshot "
    "--workdir=/tmp/pooled_{a}_s{s} (docs/probes/run10_pooled.sh)"
)


def main():
    base = zeroshot_grid.get_config()
    record_root = pathlib.Path(base.grid.record)
    for attention in ("sigmoid", "softmax"):
        for seed in (0, 1, 2):
            src = SOURCE / (attention + ("" if seed == 0 else f"_seed{seed}"))
            cell = Cell("pooled", attention, 1e-3, seed)
            want = run_config(base, cell)
            have = json.loads((src / "config.json").read_text())
            # What resuming would refuse (the project's test of "the same run"), and the length.
            diff = sorted(config_differences(have, want.to_dict()))
            if diff != ["data.path"] or have["train"]["num_steps"] != want.train.num_steps:
                raise SystemExit(f"{src}: config differs from the grid's cell in {diff}")
            result = json.loads((src / "zeroshot.json").read_text())
            scores = zeroshot_record_scores(src, result)
            dst = cell.path(record_root)
            dst.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "zeroshot.json", "zeroshot.md"):
                shutil.copyfile(src / name, dst / name)
            (dst / "scores.json").write_text(json.dumps(scores, indent=2))
            run = {
                "cell": {
                    "dataset": "pooled",
                    "attention": attention,
                    "learning_rate": 1e-3,
                    "seed": seed,
                },  # fmt: skip
                "status": "finished",
                "error": None,
                "train_time_s": None,
                "score_time_s": None,
                "resumed": False,
                "started": None,
                "ended": result["date"],
                "commit": COMMITS[seed],
                "device": DEVICE,
                "command": COMMAND.format(a=attention, s=seed),
                "workdir": result["workdir"],
                "imported_from": str(src),
            }
            (dst / "run.json").write_text(json.dumps(run, indent=2))
            print(f"{src} -> {dst} (val_loss {scores['val_loss']:.4f})")


if __name__ == "__main__":
    main()
