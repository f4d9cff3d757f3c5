"""The steps module's evaluation loop and the small shared pieces of the training package."""

import json

import numpy as np
import pytest
from train_helpers import SYNTHETIC, smoke_config

from sigjax._io import atomic_write
from sigjax.data import make_datasets
from sigjax.evaluation import embed_cells
from sigjax.training import MetricsWriter, build_model, evaluate_loss, read_metrics
from sigjax.training._steps import _apply


@pytest.fixture(scope="module")
def tiny():
    config = smoke_config(**SYNTHETIC)
    _, val, vocab = make_datasets(config.data)
    return config, build_model(config, vocab.size), val


def test_one_evaluation_loop_compiled_once_for_loss_and_embeddings(tiny):
    config, model, cells = tiny
    loss = evaluate_loss(model, cells, config)
    embedding = embed_cells(model, config, cells)
    compiled = _apply._cache_size()
    # Second calls reuse the compiled functions: nothing is traced or compiled again.
    assert evaluate_loss(model, cells, config) == loss
    np.testing.assert_array_equal(embed_cells(model, config, cells), embedding)
    assert _apply._cache_size() == compiled
    assert embedding.shape == (len(cells), config.model.embed_dim) and np.isfinite(loss)


def test_embedding_with_another_pooling_does_not_touch_the_model(tiny):
    config, model, cells = tiny
    own = embed_cells(model, config, cells)
    other = "cls" if model.pooling == "mean" else "mean"
    before = model.pooling
    changed = embed_cells(model, config, cells, pooling=other)
    assert model.pooling == before and not np.allclose(own, changed)
    np.testing.assert_array_equal(embed_cells(model, config, cells), own)
    with pytest.raises(ValueError, match="batch_size"):
        embed_cells(model, config, cells, batch_size=0)


def test_metrics_writer_keeps_complete_rows_up_to_the_resume_step(tmp_path):
    # A killed run: rows of steps 1-3, then half a line.
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "train/loss": 1.0 / s}) + "\n" for s in (1, 2, 3))
        + '{"step": 4, "train/lo'
    )
    writer = MetricsWriter(tmp_path, start_step=2)  # Resumes from the checkpoint of step 2.
    writer.write(3, {"train/loss": 0.25})
    writer.close()
    assert [(r["step"], r["train/loss"]) for r in read_metrics(tmp_path)] == [
        (1, 1.0),
        (2, 0.5),
        (3, 0.25),
    ]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # Each step once.


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    atomic_write(path, "old")
    atomic_write(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
