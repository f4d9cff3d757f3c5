"""File and provenance helpers shared by the library and its command lines."""

import io
import os
import pathlib
import subprocess


def atomic_write(path, text: str | bytes) -> None:
    """Writes `text` (str, or bytes as they are) to `path` through a temporary file and a rename.

    A process killed mid-write leaves either the old file or the new one, never half of it (the
    rename is atomic on POSIX file systems).

    Args:
      path: the file to (over)write.
      text: its new contents.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text)
    os.replace(tmp, path)


def save_png(fig, path, dpi: int = 110) -> None:
    """Saves a matplotlib figure as a 256-colour palette PNG, written atomically.

    Plots of many overlaid noisy lines (per-block gradient norms over hundreds of steps) are
    mostly anti-aliasing shades; a palette PNG keeps them legible at about a third of the
    size of the RGBA file, which matters for the reports committed under docs/data/.

    Args:
      fig: a matplotlib Figure.
      path: the .png to (over)write.
      dpi: resolution.
    """
    from PIL import Image  # A dependency of matplotlib.

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    image = Image.open(buf).convert("RGB")
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    atomic_write(path, out.getvalue())


def git_commit(repo=None) -> str | None:
    """The commit checked out in `repo` (default: this source tree), "+dirty" when tracked files
    differ from it; None outside a git checkout. Recorded with every measured result.

    Args:
      repo: a directory inside the git work tree.
    """
    repo = pathlib.Path(repo) if repo else pathlib.Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
