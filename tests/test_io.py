"""The shared file helpers: atomic writes and palette PNGs."""

import numpy as np
import pytest

from sigjax._io import atomic_write, save_png


def test_atomic_write_text_and_bytes(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write(path, "one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert not (tmp_path / "a.txt.tmp").exists()


def test_save_png_is_a_smaller_palette_image_of_the_same_plot(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i in range(24):  # Many overlaid noisy lines, as in the per-block panels.
        ax.plot(np.exp(rng.normal(size=600).cumsum() * 0.05 - i), lw=0.8)
    ax.set_yscale("log")
    fig.savefig(tmp_path / "rgba.png", dpi=110)
    save_png(fig, tmp_path / "palette.png", dpi=110)
    plt.close(fig)
    rgba = Image.open(tmp_path / "rgba.png")
    palette = Image.open(tmp_path / "palette.png")
    assert palette.mode == "P" and palette.size == rgba.size
    assert (tmp_path / "palette.png").stat().st_size < 0.7 * (tmp_path / "rgba.png").stat().st_size
    # Close to the original pixel for pixel (no dithering noise; a few shades merged).
    diff = np.abs(
        np.asarray(palette.convert("RGB"), dtype=np.int16)
        - np.asarray(rgba.convert("RGB"), dtype=np.int16)
    )
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 40
