"""The 160M stress test on real long cells (issue 15): Chung 2017 breast-cancer Smart-seq2 cells.

configs/stress_160m_grid.py (161.5M-size blocks, 8K tokens, no clipping, 600 steps, hybrid norm)
on the full-length cells of ../shared/DATA.md instead of synthetic ones: 563 cells with a median
of ~6,750 expressed genes (read counts; the scirpy 0.22.5 sdist), every expressed gene a token
(`gene_selection="all_expressed"`; a cell with more than 8,191 keeps a random 8,191). The
vocabulary is every gene of the set (~23K), so the gene embedding is larger than the synthetic
grid's (~24M instead of 10M parameters). 600 steps of 8 cells are ~9 passes over the 535
training cells: this asks whether an attention diverges on real long sequences, not how well it
generalises (the validation loss on 28 held-out cells will show overfitting).
Run (H200; the sdist in $SIGJAX_DATA_DIR or --config.data.path=FOLDER holding it):
  python -m eval stability --config=configs/stress_160m_long.py --learning_rates=1e-2 --seeds=0
  python -m eval stability --config=configs/stress_160m_long.py --report_only
"""

from configs import stress_160m_grid


def get_config(arg=None):
    c = stress_160m_grid.get_config(arg)
    c.data.dataset = "chung_breast"
    c.data.gene_selection = "all_expressed"
    c.data.val_fraction = 0.05
    c.grid.name = "stress_160m_long"
    c.grid.learning_rates = (3e-3, 1e-2, 3e-2)  # 1e-2 and 3e-2 ran (docs/stability.md 5j-5k).
    c.grid.seeds = (0,)
    c.grid.workdir = "runs/stress_160m_long"
    c.grid.record = "docs/data/stress_160m_long"
    c.grid.report = "docs/data/stability/stress_160m_long"
    return c
