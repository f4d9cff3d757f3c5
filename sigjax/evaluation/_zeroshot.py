"""Zero-shot embedding: labelled sets embedded by a pretrained run with no training on them,
scored as the study scores embeddings, next to the PCA baseline of the same cells.

This is how foundation models are used, and the field's benchmark for them (Kedzierska et al.
2025) finds they often lose to PCA there. Scores (definitions in `sigjax.evaluation._score`):
kNN purity, NMI/ARI, silhouette, cLISI and isolated labels on all labelled cells, and kNN accuracy
by k-fold cross-validation over the labelled cells (stratified, shuffled with seed 0): each fold's
labels are predicted by a 15-NN classifier fit on the other folds' embeddings, and the accuracy is
the fraction of cells predicted right over all folds. The model never sees the labels; the
classifier sees only other cells' labels, as the study's held-out kNN accuracy does.

A pooled run (data.dataset="pooled") matches genes by upper-case symbol through its vocabulary
(`sigjax.data.match_to_vocab`); any other run matches gene ids as they are. Sets whose genes carry
no symbols (zeisel, cbmc) cannot be matched by symbol and are reported as not embeddable, not
faked.
"""

import datetime
import json
import logging
import pathlib
import time
import warnings

import numpy as np

log = logging.getLogger(__name__)

ZEROSHOT_DEFAULT = ("pbmc68k_reduced", "scmark", "zeisel", "cbmc")
ZEROSHOT_FILE = "zeroshot"  # DIR/zeroshot.json and DIR/zeroshot.md.
METHODS = ("sigjax", "pca_hvg")
COLUMNS = ("knn_accuracy", "knn_purity", "nmi", "ari", "silhouette", "clisi")


def kfold_knn_accuracy(x, labels, folds: int = 5, seed: int = 0) -> float:
    """kNN accuracy by stratified k-fold cross-validation (module docstring).

    Args:
      x: [C, E] embeddings.
      labels: [C] labels; unknown ones ("-1", "nan", "") are left out.
      folds: number of folds (capped at the number of labelled cells).
      seed: seed of the fold assignment.

    Returns:
      The fraction of labelled cells whose label the other folds' classifier predicts.

    Raises:
      ValueError: folds < 2, or fewer than two labelled cells.
    """
    from sklearn.model_selection import StratifiedKFold

    from sigjax.evaluation._score import _known, knn_accuracy

    if int(folds) < 2:
        raise ValueError(f"folds: got {folds}, expected an integer >= 2")
    labels, ok = _known(labels)
    x, labels = np.asarray(x, np.float32)[ok], labels[ok]
    if len(labels) < 2:
        raise ValueError(f"labels: got {len(labels)} labelled cells; expected at least two")
    n_splits = min(int(folds), len(labels))
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    if smallest < n_splits:  # Still valid: that label is missing from some folds (warned).
        log.warning("a label has %d cells, fewer than the %d folds", smallest, n_splits)
    split = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    right = 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        for train, test in split.split(x, labels):
            right += knn_accuracy(x[train], labels[train], x[test], labels[test]) * len(test)
    return float(right / len(labels))


def zeroshot_scores(x, labels, folds: int = 5) -> dict:
    """`score_embedding` of all labelled cells plus k-fold `knn_accuracy`."""
    from sigjax.evaluation._score import score_embedding

    scores = score_embedding(x, labels)
    scores["knn_accuracy"] = kfold_knn_accuracy(x, labels, folds)
    return scores


def _subsample(adata, max_cells: int | None):
    if not max_cells or adata.n_obs <= max_cells:
        return adata
    idx = np.sort(np.random.default_rng(0).choice(adata.n_obs, int(max_cells), replace=False))
    return adata[idx].copy()


def zeroshot(
    workdir,
    datasets=ZEROSHOT_DEFAULT,
    *,
    source=None,
    max_cells: int | None = None,
    folds: int = 5,
    out=None,
) -> dict:
    """Embeds each labelled set with a pretrained run, zero-shot, and scores it against PCA.

    For each set: its cells (at most `max_cells`, a fixed random subset) are matched to the run's
    vocabulary (by upper-case symbol for a pooled run, by id otherwise; the match count is
    reported), tokenised as the run's training tokenised its data (`tokenize_with`), embedded
    (`embed_cells`) and scored with `zeroshot_scores`; the baseline is PCA of log-normalised HVGs
    (`pca_baseline`, on the set's own genes) of the same cells, scored the same way. A set the run
    pretrained on (self-supervised) is flagged `seen_in_pretraining`: not zero-shot.

    Writes OUT/zeroshot.json (everything) and OUT/zeroshot.md (the table).

    Args:
      workdir: a training run directory (a pooled pretraining run, typically).
      datasets: names of labelled sets (see `sigjax.data.DATASETS`), a sequence or a
        comma-separated string.
      source: a folder holding the package archives (offline); default: the cache.
      max_cells: embed at most this many cells per set; None = all.
      folds: folds of the kNN accuracy.
      out: folder of the outputs; default `workdir`.

    Returns:
      {"workdir", "attention", "step", "vocab", "by_symbol", "rows": [one dict per set: "dataset",
      and either "status" (why it was not embedded) or "cells", "genes", "matched",
      "empty_cells", "seen_in_pretraining", "sigjax": scores, "pca_hvg": scores]}.

    Raises:
      FileNotFoundError: no run or checkpoint in workdir.
      ValueError: an unknown data set name, or max_cells/folds out of range.
    """
    from sigjax.data import DATASETS, match_to_vocab, tokenize_with
    from sigjax.data._anndata import LABEL_KEY
    from sigjax.data._pooled import NO_SYMBOLS, POOLED, load_one, parse_datasets
    from sigjax.evaluation._embed import embed_cells
    from sigjax.evaluation._score import BASELINE_KEY, pca_baseline
    from sigjax.training import load_model

    names = [n.strip() for n in datasets.split(",")] if isinstance(datasets, str) else datasets
    names = [str(n) for n in names if str(n).strip()]
    for n in names:
        if n not in DATASETS:
            raise ValueError(f"--datasets: got {n!r}, expected names from {DATASETS}")
    if not names:
        raise ValueError("--datasets: got none; expected at least one labelled data set")
    if max_cells is not None and int(max_cells) < 3:
        raise ValueError(f"--max_cells: got {max_cells}, expected >= 3 (or none)")
    if int(folds) < 2:
        raise ValueError(f"--folds: got {folds}, expected an integer >= 2")
    workdir = pathlib.Path(workdir)
    clock = time.perf_counter()
    model, config, vocab = load_model(workdir)
    load_s = time.perf_counter() - clock
    by_symbol = config.data.dataset == POOLED
    seen = (
        set(parse_datasets(config.data.get("datasets", ""))) if by_symbol else {config.data.dataset}
    )
    result = {
        "workdir": str(workdir),
        "attention": config.model.attention,
        "step": int(config.train.num_steps),
        "vocab": vocab.n_genes,
        "by_symbol": by_symbol,
        "folds": int(folds),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "seconds": {"load_model": round(load_s, 2)},
        "rows": [],
    }
    for name in names:
        row = {"dataset": name}
        result["rows"].append(row)
        if by_symbol and name in NO_SYMBOLS:
            row["status"] = (
                f"not embeddable zero-shot: its genes have no symbols ({name}_gene_{{i}}), so "
                "they cannot be matched to the vocabulary by symbol"
            )
            print(f"{name}: {row['status']}")
            continue
        clock = time.perf_counter()
        adata = load_one(name, source)
        if LABEL_KEY not in adata.obs.columns:
            row["status"] = "not scored: the set has no cell-type labels"
            print(f"{name}: {row['status']}")
            continue
        adata = _subsample(adata, max_cells)
        if by_symbol:
            matched_data, matched, total = match_to_vocab(adata, vocab, name)
        else:
            matched_data, total = adata, adata.n_vars
            matched = int(np.sum(vocab.encode(adata.var_names) >= 0))
        print(
            f"{name}: {adata.n_obs} cells; {matched} of {total} "
            f"{'symbols' if by_symbol else 'genes'} in the vocabulary, {total - matched} dropped"
        )
        if matched == 0:
            row["status"] = "not embeddable: no gene matches the vocabulary"
            continue
        tokens = tokenize_with(config.data, matched_data, vocab)
        labels = np.asarray(adata.obs[LABEL_KEY].astype(str))
        seconds = {"data": time.perf_counter() - clock}
        pca_baseline(adata, values=config.data.get("input_values") or "auto")
        seconds["pca"] = time.perf_counter() - clock - sum(seconds.values())
        x = embed_cells(model, config, tokens)
        seconds["embed"] = time.perf_counter() - clock - sum(seconds.values())
        row.update(
            cells=int(adata.n_obs),
            genes=int(total),
            matched=matched,
            empty_cells=int(np.sum(tokens.lengths == 1)),
            seen_in_pretraining=name in seen,
            labels=int(len(set(labels))),
            sigjax=zeroshot_scores(x, labels, folds),
            pca_hvg=zeroshot_scores(np.asarray(adata.obsm[BASELINE_KEY]), labels, folds),
        )
        seconds["score"] = time.perf_counter() - clock - sum(seconds.values())
        # Where a device call's scoring time goes (data, PCA baseline, embedding, scores).
        result["seconds"][name] = {k: round(v, 2) for k, v in seconds.items()}
        print(f"{name}: seconds {result['seconds'][name]}")
    out = pathlib.Path(out) if out else workdir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{ZEROSHOT_FILE}.json").write_text(json.dumps(result, indent=2))
    (out / f"{ZEROSHOT_FILE}.md").write_text(zeroshot_markdown(result))
    print(f"wrote {out / ZEROSHOT_FILE}.json and .md")
    return result


def zeroshot_markdown(result: dict) -> str:
    """The table of a `zeroshot` result: one row per set and method, sets not embedded listed
    with the reason."""
    head = ["data set", "cells", "genes matched", "method", *COLUMNS]
    lines = [
        f"Zero-shot embedding by `{result['workdir']}` ({result['attention']}, "
        f"{result['step']} steps, vocabulary {result['vocab']} "
        f"{'symbols, matched by upper-case symbol' if result['by_symbol'] else 'genes'}), "
        f"{result['date']}. kNN accuracy: {result['folds']}-fold cross-validation over the "
        "labelled cells; the other scores on all labelled cells. PCA: 50 PCs of log-normalised "
        "HVGs of the set's own genes, same cells.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    notes = []
    for row in result["rows"]:
        if "status" in row:
            notes.append(f"- {row['dataset']}: {row['status']}.")
            continue
        name = row["dataset"] + (" (seen in pretraining)" if row["seen_in_pretraining"] else "")
        for method in METHODS:
            s = row[method]
            matched = f"{row['matched']} / {row['genes']}" if method == "sigjax" else "all"
            cells = [name, str(row["cells"]), matched, method]
            lines.append("| " + " | ".join(cells + [f"{s[c]:.3f}" for c in COLUMNS]) + " |")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def zeroshot_summary(records) -> dict:
    """Mean and spread over seeds of `zeroshot` results, per labelled set and attention.

    Each record is a folder holding zeroshot.json (or the file itself), one per pretrained run;
    records are grouped by the run's attention. Per set: each attention's mean and sample std
    (ddof=1; 0 with one record) of every score in COLUMNS, the number of records, and the PCA
    baseline's scores. The baseline is PCA of the set's own cells, so it must be the same in every
    record (up to float noise of 1e-6); records of different cells are refused. With both
    attentions and at least two records each, `beyond_spread` lists the scores whose means differ
    by more than the sum of the two stds (`sigjax.evaluation.beyond_spread`, the study's rule).

    Args:
      records: folders (or zeroshot.json files) written by `zeroshot`.

    Returns:
      {"records": [paths], "sets": [{"dataset", "attentions": {attention: {"n", "mean": {score:
      value}, "std": {...}}}, "pca_hvg": {score: value}, "beyond_spread": {score: mean of sigmoid
      minus mean of softmax} or None}]}.

    Raises:
      ValueError: no records, a record without zeroshot.json, or baselines that differ.
    """
    from sigjax.evaluation._study import beyond_spread

    paths = [pathlib.Path(r) for r in records]
    if not paths:
        raise ValueError("records: got none, expected folders holding zeroshot.json")
    results = []
    for path in paths:
        file = path / f"{ZEROSHOT_FILE}.json" if path.is_dir() else path
        if not file.is_file():
            raise ValueError(f"records: {str(path)!r} has no {ZEROSHOT_FILE}.json")
        results.append(json.loads(file.read_text()))
    by_set: dict[str, dict] = {}
    for path, result in zip(paths, results, strict=True):
        for row in result["rows"]:
            if "sigjax" not in row:
                continue  # Not embeddable (a `status` row).
            entry = by_set.setdefault(row["dataset"], {"values": {}, "pca": []})
            entry["values"].setdefault(result["attention"], []).append(
                [row["sigjax"][c] for c in COLUMNS]
            )
            entry["pca"].append((str(path), [row["pca_hvg"][c] for c in COLUMNS]))
    sets = []
    for name, entry in by_set.items():
        first_path, first = entry["pca"][0]
        for path, pca in entry["pca"][1:]:
            if not np.allclose(pca, first, rtol=0, atol=1e-6):
                raise ValueError(
                    f"records: {name}'s PCA baseline differs between {first_path!r} and "
                    f"{path!r}; expected records of the same cells"
                )
        stats = {}
        for attention, values in entry["values"].items():
            v = np.asarray(values, np.float64)
            std = v.std(0, ddof=1) if len(v) > 1 else np.zeros(len(COLUMNS))
            stats[attention] = {
                "n": len(v),
                "mean": dict(zip(COLUMNS, v.mean(0).tolist(), strict=True)),
                "std": dict(zip(COLUMNS, std.tolist(), strict=True)),
            }
        apart = None
        if {"sigmoid", "softmax"} <= set(stats) and min(s["n"] for s in stats.values()) > 1:
            sig, soft = stats["sigmoid"], stats["softmax"]
            apart = {
                c: sig["mean"][c] - soft["mean"][c]
                for c in COLUMNS
                if beyond_spread(sig["mean"][c], sig["std"][c], soft["mean"][c], soft["std"][c])
            }
        sets.append(
            {
                "dataset": name,
                "attentions": stats,
                "pca_hvg": dict(zip(COLUMNS, first, strict=True)),
                "beyond_spread": apart,
            }
        )
    return {"records": [str(p) for p in paths], "sets": sets}


def zeroshot_summary_markdown(summary: dict) -> str:
    """The table of `zeroshot_summary`: per set, each attention's mean ± std and the PCA row, then
    a line per set naming the differences beyond the seed spread."""
    head = ["data set", "embedding", "records", *COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for s in summary["sets"]:
        for attention, st in sorted(s["attentions"].items()):
            cells = [f"{st['mean'][c]:.3f} ± {st['std'][c]:.3f}" for c in COLUMNS]
            lines.append("| " + " | ".join([s["dataset"], attention, str(st["n"]), *cells]) + " |")
        pca = [f"{s['pca_hvg'][c]:.3f}" for c in COLUMNS]
        lines.append("| " + " | ".join([s["dataset"], "PCA of HVGs", "", *pca]) + " |")
        if s["beyond_spread"] is not None:
            apart = ", ".join(f"{c} ({d:+.3f})" for c, d in s["beyond_spread"].items()) or "none"
            notes.append(f"- {s['dataset']}: sigmoid − softmax beyond the seed spread: {apart}")
    tail = [
        "",
        "Mean ± sample std over records (seeds); beyond the spread: the means differ by more "
        "than the sum of the two stds.",
    ]
    return "\n".join(lines + ([""] + notes if notes else []) + tail) + "\n"
