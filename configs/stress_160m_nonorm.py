"""Where softmax might diverge (issue 15): the 160M grid without the hybrid norm, both attentions.

configs/stress_160m_grid.py with `model.attention_output_norm=False`: a plain pre-LN block, as in
the paper's models, where nothing rescales the attention branch. Every cell of the main grid is
stable for both attentions with the norm (docs/stability.md, sections 5a and 5b), so this asks
whether the norm is what keeps softmax from diverging. Without it sigmoid's MLPs froze at this
size (docs/stability.md, section 1): the update ratios and the `frozen` column say whether a
stable run here still trains. Records and report go to their own folders (grid name
"stress_160m_nonorm"), so the main grid's stay as they are.
Run (H200; two 600-step runs per 10-minute device call):
  python -m eval stability --config=configs/stress_160m_nonorm.py --learning_rates=1e-2 --seeds=0
  python -m eval stability --config=configs/stress_160m_nonorm.py --report_only
"""

from configs import stress_160m_grid


def get_config(arg=None):
    c = stress_160m_grid.get_config(arg)
    c.model.attention_output_norm = False
    c.grid.name = "stress_160m_nonorm"
    c.grid.learning_rates = (
        3e-3,
        1e-2,
        3e-2,
    )  # Around where the normed grid has its largest jumps.
    c.grid.seeds = (0, 1)  # Seeds 0 and 1 ran at LR 1e-2 (docs/stability.md, section 5f).
    c.grid.workdir = "runs/stress_160m_nonorm"
    c.grid.record = "docs/data/stress_160m_nonorm"
    c.grid.report = "docs/data/stability/stress_160m_nonorm"
    return c
