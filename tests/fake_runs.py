"""Fake run folders with exactly the files and columns of the run-folder contract.

For the study, aggregation and book tests only: the label maps are random blobs, and every
count, per-class score and summary is computed from them with the project's own metrics, so
the files are consistent with one another the way a real run's are.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spineseg_core.labels import LABELS
from spineseg_core.metrics import confusion_matrix, counts_from_confusion, per_slice_dice, scores, summarize

FAKE_FINGERPRINT = "f0" * 32
"""The source fingerprint fake runs record unless told otherwise."""

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "dice", "miou", "fnr", "fpr", "recall",
                   "dice3d", "lr", "epoch_seconds")


def _mask(rng: np.random.Generator, size: int, n_slices: int) -> np.ndarray:
    """A column of horizontal bands labelled 1..k (k random) on background 0."""
    vol = np.zeros((n_slices, size, size), dtype=np.uint8)
    k = int(rng.integers(12, 20))
    band = size // (k + 2)
    if band < 2:
        raise ValueError(f"size {size} too small for {k} bands; use size >= 64")
    for s in range(n_slices):
        for lab in range(1, k + 1):
            r0 = size - (lab + 1) * band
            vol[s, r0:r0 + band, size // 4: size // 4 + size // 3] = lab
    return vol


def _predict(rng: np.random.Generator, mask: np.ndarray, quality: float) -> np.ndarray:
    pred = mask.copy()
    flip = rng.random(mask.shape) > quality
    pred[flip] = rng.integers(0, len(LABELS), size=int(flip.sum()))
    return pred


def write_fake_run(run_dir: str | Path, model: str, seed: int = 0, fold: int = 0,
                   profile: str = "test", loss: str = "dice", quality: float = 0.8,
                   n_cases: int = 4, n_slices: int = 3, size: int = 64, epochs: int = 3,
                   data_seed: int = 0, checkpoint: bool = True,
                   fingerprint: str | None = FAKE_FINGERPRINT,
                   model_kwargs: dict | None = None) -> Path:
    """Write a finished run folder of ``model`` whose predictions have roughly ``quality``.

    ``fingerprint`` is the source fingerprint its env stamp records (None: not recorded);
    ``model_kwargs`` the build overrides its ``params.json`` records (none when None).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_rng = np.random.default_rng(data_seed * 1000 + fold)
    rng = np.random.default_rng(zlib.crc32(f"{model}/{seed}/{fold}/{loss}".encode()))
    case_ids = [f"Case{fold * 100 + i + 2}" for i in range(n_cases)]
    masks = {c: _mask(data_rng, size, n_slices) for c in case_ids}
    images = {c: (m.astype(np.float32) * 10 + data_rng.normal(0, 5, m.shape)) for c, m in masks.items()}
    preds = {c: _predict(rng, m, quality) for c, m in masks.items()}

    per_case_rows, total = [], torch.zeros(len(LABELS), len(LABELS), dtype=torch.int64)
    for c in case_ids:
        cm = confusion_matrix(preds[c], masks[c])
        total += cm
        cnt = counts_from_confusion(cm)
        dice = scores(cnt)["dice"]
        for v in range(len(LABELS)):
            per_case_rows.append(dict(case_id=c, class_value=v, class_name=LABELS[v].name,
                                      tp=int(cnt.tp[v]), fp=int(cnt.fp[v]), fn=int(cnt.fn[v]),
                                      tn=int(cnt.tn[v]), dice=float(dice[v]),
                                      hd95=float(rng.uniform(1, 10))))
    pooled = counts_from_confusion(total)
    sc = scores(pooled)
    summary = summarize(pooled)
    pd.DataFrame(per_case_rows).to_csv(run_dir / "per_case.csv", index=False)
    pd.DataFrame([dict(class_value=lab.value, class_name=lab.name, kind=str(lab.kind),
                       dice=float(sc["dice"][lab.value]), iou=float(sc["iou"][lab.value]),
                       fnr=float(sc["fnr"][lab.value]), fpr=float(sc["fpr"][lab.value]),
                       recall=float(sc["recall"][lab.value]), tp=int(pooled.tp[lab.value]),
                       fp=int(pooled.fp[lab.value]), fn=int(pooled.fn[lab.value]),
                       tn=int(pooled.tn[lab.value])) for lab in LABELS]
                 ).to_csv(run_dir / "per_class.csv", index=False)

    hist = []
    for e in range(1, epochs + 1):
        f = e / epochs
        hist.append(dict(epoch=e, train_loss=1 - 0.5 * f, val_loss=1.1 - 0.5 * f,
                         dice=summary["dice"] * f, miou=summary["miou"] * f,
                         fnr=1 - (1 - summary["fnr"]) * f, fpr=summary["fpr"],
                         recall=summary["recall"] * f, dice3d=summary["dice"] * f,
                         lr=5e-4, epoch_seconds=1.0))
    pd.DataFrame(hist, columns=HISTORY_COLUMNS).to_csv(run_dir / "history.csv", index=False)

    image = np.concatenate([images[c] for c in case_ids]).astype(np.float16)
    mask = np.concatenate([masks[c] for c in case_ids])
    pred = np.concatenate([preds[c] for c in case_ids])
    np.savez_compressed(run_dir / "predictions.npz", image=image, mask=mask, pred=pred,
                        case_id=np.repeat(case_ids, n_slices),
                        slice_index=np.tile(np.arange(n_slices), n_cases),
                        dice=per_slice_dice(pred, mask).numpy())

    params = dict(model=model, profile=profile, data_dir=None, phantom_cases=n_cases * 5,
                  phantom_size=size, image_size=size, epochs=epochs, batch_size=4, lr=5e-4,
                  loss=loss, seed=seed, fold=fold, k_folds=None, max_cases=None,
                  model_kwargs=model_kwargs,
                  out_dir=str(run_dir), device="cpu", precision="fp32",
                  env=dict(host="testhost", cpu="test cpu", gpu=None, torch=torch.__version__,
                           python="3.11", spineseg="0.1.0", git_commit="0" * 40, device="cpu",
                           **({} if fingerprint is None else {"source_fingerprint": fingerprint})))
    (run_dir / "params.json").write_text(json.dumps(params, indent=2))
    if checkpoint:
        (run_dir / "checkpoint_last.pt").write_bytes(b"fake")
    metrics = dict(summary, dice3d_mean=summary["dice"], dice3d_std=0.01, hd95_mean=5.0,
                   bg_recall=0.995, absent_fraction=0.0001, evaluated_on="test",
                   best_epoch=epochs, val_dice=summary["dice"], epochs_completed=epochs,
                   train_seconds=float(epochs), test_seconds=1.0, n_train_cases=4 * n_cases,
                   n_val_cases=n_cases, n_test_cases=n_cases, n_test_slices=n_cases * n_slices,
                   params=1000,
                   model=model, profile=profile, seed=seed, fold=fold)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return run_dir


def make_fake_study(runs_dir: str | Path, profile: str = "test",
                    models: tuple[str, ...] = ("unet", "deeplabv3plus", "miniseg"),
                    seeds: tuple[int, ...] = (0, 1), folds: tuple[int, ...] = (0,),
                    losses: tuple[str, ...] = ("ce",),
                    variants: dict[str, dict] | None = None, **kwargs) -> Path:
    """A profile's runs plus a loss-comparison group per loss (first two models, seed 0).

    ``variants`` adds side-study groups ``<profile>-<variant>``: each maps to ``models`` (run
    at seed 0) and the :func:`write_fake_run` arguments that change, e.g.
    ``{"res256": {"models": ("unet",), "size": 128}}``.
    """
    runs_dir = Path(runs_dir)
    for i, model in enumerate(models):
        for seed in seeds:
            for fold in folds:
                write_fake_run(runs_dir / profile / model / f"seed_{seed}" / f"fold_{fold}",
                               model, seed, fold, profile, quality=0.95 - 0.1 * i, **kwargs)
    for loss in losses:
        for i, model in enumerate(models[:2]):
            write_fake_run(runs_dir / f"{profile}-loss-{loss}" / model / "seed_0" / "fold_0",
                           model, 0, 0, profile, loss=loss, quality=0.85 - 0.1 * i, **kwargs)
    for variant, spec in (variants or {}).items():
        spec = dict(spec)
        for i, model in enumerate(spec.pop("models")):
            write_fake_run(runs_dir / f"{profile}-{variant}" / model / "seed_0" / "fold_0", model,
                           0, 0, profile, **{"quality": 0.9 - 0.1 * i, **kwargs, **spec})
    return runs_dir


def fake_runner(notebook: Path, output: Path, parameters: dict, cwd: Path) -> None:
    """Stands in for papermill: records its parameters and writes a finished fake run.

    Fails like a crashing notebook when ``parameters["model"] == parameters.get("fail_model")``.
    """
    out = Path(parameters["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runner_calls.jsonl", "a") as fh:
        fh.write(json.dumps(parameters) + "\n")
    if parameters["model"] == parameters.get("fail_model"):
        raise RuntimeError(f"fake failure of {parameters['model']}")
    write_fake_run(out, parameters["model"], parameters["seed"], parameters["fold"],
                   parameters["profile"], loss=parameters.get("loss", "dice"))
    output.write_text("{}")


def write_fake_efficiency(path: str | Path, models: tuple[str, ...]) -> Path:
    """An ``efficiency.csv`` with the contract's columns (values made up, not measured)."""
    from spineseg_core.models import model_info

    rows = []
    for i, m in enumerate(models):
        info = model_info(m)
        rows.append(dict(model=m, display_name=info.display_name, family=str(info.family),
                         backbone=info.backbone, params=10**6 * (i + 1), params_m=float(i + 1),
                         gmacs_880=100.0 * (i + 1), size=64, gmacs_size=0.5 * (i + 1),
                         train_peak_mem_mb=100.0 * (i + 1), mem_device="cpu",
                         train_img_s=10.0 / (i + 1), infer_img_s=30.0 / (i + 1), device="cpu"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_fake_loss_variants(path: str | Path) -> Path:
    """A ``loss_variants.csv`` as ``scripts/loss_variants.py`` writes it: every variant of
    :data:`spineseg_core.study.loss_study.VARIANTS`, only ``ce`` and ``dice_ce`` sane."""
    import pandas as pd

    from spineseg_core.study.loss_study import VARIANTS, kwargs_json

    rows = []
    for i, v in enumerate(VARIANTS):
        sane = v.loss != "dice"
        rows.append({"variant": v.name, "loss": v.loss, "loss_kwargs": kwargs_json(v),
                     "epochs": 6, "best_epoch": 6, "val_dice": 0.7 + 0.01 * i,
                     "val_bg_recall": 0.99 if sane else 0.8,
                     "val_absent_fraction": 0.0 if sane else 0.1,
                     "val_late_bg_recall_min": 0.99 if sane else 0.8,
                     "val_late_absent_max": 0.0 if sane else 0.1, "late_epochs": 3,
                     "test_dice": 0.6, "test_bg_recall": 0.99 if sane else 0.8,
                     "test_absent_fraction": 0.0 if sane else 0.1})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_fake_record(record_dir: str | Path, model: str, val_dice: float, *,
                      loss: str = "dice_ce", seed: int = 0,
                      model_kwargs: dict | None = None, image_size: int = 128,
                      late_bg_recall: float = 0.99, fingerprint: str | None = FAKE_FINGERPRINT
                      ) -> Path:
    """A finished record (:func:`write_fake_run`, small) whose best validation Dice is
    ``val_dice`` and whose validation history holds background recall and absent fraction,
    ``late_bg_recall`` at its second-to-last epoch: the inputs of the protocol's decisions
    (:mod:`spineseg_core.study.decisions`)."""
    run = write_fake_run(record_dir, model, seed=seed, loss=loss, n_cases=2, n_slices=2,
                         size=64, epochs=4, checkpoint=False, fingerprint=fingerprint,
                         model_kwargs=model_kwargs)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "val_dice": val_dice}))
    params = json.loads((run / "params.json").read_text())
    (run / "params.json").write_text(json.dumps({**params, "image_size": image_size}))
    hist = pd.read_csv(run / "history.csv")
    hist["bg_recall"] = [0.5, 0.99, late_bg_recall, 0.99]
    hist["absent_fraction"] = [0.3, 0.0, 0.0, 0.0]
    hist.to_csv(run / "history.csv", index=False)
    return run
