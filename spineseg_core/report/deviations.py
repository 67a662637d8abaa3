"""Every way this study departs from the paper's protocol, each with its reason.

One list, shown as one table in the book's introduction, so that a reader comparing a number
with the paper's sees at once what differs. Where the difference depends on the bundle (its
grid, epochs, seeds), :func:`deviations` fills it in from the bundle's setup; the backbones come
from the model registry and the paper's Table 3, so a model built differently from the paper's is
listed without anyone remembering to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from spineseg_core.report.bundle import and_join
from spineseg_core.report.facts import Setup, seeds_text


@dataclass(frozen=True)
class Deviation:
    """One departure: what it is about, the paper's choice, ours, and why."""

    aspect: str
    paper: str
    ours: str
    reason: str


BACKBONE_REASONS: dict[str, str] = {
    "pspnet": "the paper names ResNet-101, but the size its Table 3 gives (27 M parameters, "
              "470 GMACs at 880 px) is that of PSPNet on ResNet-34 (PSPNet on ResNet-101 has "
              "about 66 M); we build the model its numbers describe",
}
"""Why a model's backbone differs from the one the paper names (by registry name)."""


def _norm(name: str) -> str:
    return name.replace("-", "").replace(" ", "").lower()


def backbone_deviations() -> list[Deviation]:
    """Models whose backbone differs from the one the paper's Table 3 names."""
    from spineseg_core.models import list_models, model_info
    from spineseg_core.study.paper import table3_efficiency

    paper = table3_efficiency().set_index("model")["backbone"].fillna("")
    out = []
    for name in list_models():
        info = model_info(name)
        theirs = str(paper.get(info.display_name, ""))
        if theirs and _norm(theirs) != _norm(info.backbone):
            out.append(Deviation(f"{info.display_name} backbone", theirs, info.backbone or "none",
                                 BACKBONE_REASONS.get(name, "not recorded")))
    return out


def deviations(setup: Setup | None = None, plateau: pd.DataFrame | None = None,
               raised: dict[str, Any] | None = None) -> list[Deviation]:
    """The study's departures from the paper; ``setup`` fills in the bundle's own values,
    ``plateau`` (the budget seed's ``plateau.csv``) and ``raised`` (its ``budget.json``) the
    budget's status."""
    grid = f"{setup.image_size} × {setup.image_size} px" if setup and setup.image_size else \
        "the profile's grid (128 × 128 px on the cpu profile)"
    epochs = (", ".join(str(e) for e in setup.epochs) + " epochs, batch "
              + str(setup.batch_size)) if setup and setup.epochs else "the profile's epochs"
    seeds = ((setup and seeds_text(setup.seeds_per_model))
             or (f"{len(setup.seeds)} seed(s) per model" if setup and setup.seeds
                 else "several seeds per model"))
    data = ("a procedural phantom written in MRSpineSeg's layout, calibrated against a real "
            "T2 scan" if setup is None or setup.data_kind == "phantom"
            else "the real data given to the study")
    from spineseg_core.study.paper import table1_overall

    paper = table1_overall()
    lo, hi = (paper["fn_rate"] + paper["recall"]).agg(["min", "max"])
    rows = [
        Deviation("Data", "MRSpineSeg: sagittal T2 MRI, 172 labelled subjects, 20 labels", data,
                  "MRSpineSeg cannot be downloaded here or shipped; users bring their copy "
                  "(-p data_dir PATH) and the same code runs on it"),
        Deviation("Image grid", "880 × 880 px", grid,
                  "training twelve models on two CPU cores; the resolution chapter checks "
                  "whether the ordering depends on it"),
        Deviation("Training length", "up to about 120 epochs (its Figure 19)", epochs,
                  "the same CPU budget for every model; the convergence chapter shows how far "
                  "each curve got"),
        Deviation("Loss", "Dice (its eq. 1)", "Dice + cross-entropy (dice_ce)",
                  "every pure Dice variant we tried let models label background as absent "
                  "levels on this budget (loss chapter); the Dice runs are kept as a finding"),
        Deviation("Evaluation set", "the validation set of an 8:2 split, which also shows the "
                  "training curves", "a held-out test set no choice sees; the checkpoint is "
                  "chosen on a separate validation set",
                  "a score on the set that chose the checkpoint is optimistic"),
        Deviation("Repetitions", "one run per model", seeds + ", with 95 % intervals over "
                  "seeds and test subjects", "a single run has no measured spread"),
        Deviation("FN rate and recall", f"from different counts (FNR + recall is {lo:.1f}-"
                  f"{hi:.1f} % in every row of its Table 1)", "from the same confusion counts: FNR = 1 − "
                  "recall, per class, then averaged", "the paper's pair cannot both be right "
                  "for one set of counts; we report the consistent pair"),
        Deviation("Hardware and precision", "one RTX 3090; precision not stated",
                  "CPU, bf16 autocast where the processor runs bf16 natively, else fp32",
                  "no GPU here; the precision is recorded per run"),
        Deviation("Training crop", "not stated", "a random band around the spine, training "
                  "slices only", "focuses the small grid on the spine; evaluation never uses "
                  "the reference mask"),
    ]
    return (rows + [budget_deviation(plateau, raised), stride_deviation()]
            + exception_deviations()
            + backbone_deviations())


def stride_deviation() -> Deviation:
    """The one output-stride rule for every dilatable encoder (:mod:`spineseg_core.models.stride`),
    with the strides it gives on the cpu profile's grid."""
    from spineseg_core.models import list_models, model_info
    from spineseg_core.models.stride import MIN_MAP_PX, stride_table
    from spineseg_core.training.config import Profile, resolve_config

    cpu = resolve_config(Profile.CPU)
    table = stride_table(list_models(), cpu.image_size, cpu.crop_width)
    paper = ", ".join(f"{model_info(r['model']).display_name} {r['default']}" for r in table)
    ours = ", ".join(f"{model_info(r['model']).display_name} {r['stride']}" for r in table)
    from spineseg_core.models.stride import K_DECIDED

    k_text = (f"k = {MIN_MAP_PX}, chosen on validation runs at every stride it could give "
              f"(scripts/stride_runs.sh, spineseg decide)" if K_DECIDED else
              f"the provisional k = {MIN_MAP_PX}, until the validation runs of "
              f"scripts/stride_runs.sh decide it")
    return Deviation(
        "Output stride of the dilatable encoders", f"each model's own ({paper})",
        f"one rule for every model that takes an output stride, applied to every run made "
        f"since it was adopted: its own stride unless its deepest map would be narrower than "
        f"k px on the training input's short side, then the coarsest stride that keeps k px; "
        f"with {k_text}, it gives {ours}. The 6-epoch records predate the rule: every model "
        f"trained at its own stride, DANet at 8 by a budget exception made after its stride-32 "
        f"runs failed",
        "on a 128 px grid trained on a 64 px band a stride-32 encoder ends on a map 2 px "
        "across; DANet alone was moved to stride 8 after it failed, Inf-Net at stride 32 was "
        "never examined: one rule, decided on validation only, treats every encoder alike")


def budget_status(plateau: pd.DataFrame | None, raised: dict[str, Any] | None = None) -> str:
    """The cpu profile's budget and what the budget seed's labels (``plateau.csv``) say of it
    so far (:func:`spineseg_core.study.plateau.budget_verdict`); ``raised``, the seed's
    ``budget.json`` (:mod:`spineseg_core.study.budget_raise`) when it raised the budget once,
    names the new budget, the old one and why: a raised budget is final."""
    from spineseg_core.models import list_models
    from spineseg_core.study.budget_raise import at_budget
    from spineseg_core.study.plateau import MIN_PLATEAUED, BudgetVerdict, budget_verdict
    from spineseg_core.training.config import CPU_STEPS

    models = list_models()
    plateau = at_budget(plateau, raised)
    verdict, done, measured = budget_verdict(plateau, models)
    steps = CPU_STEPS  # before any label; a raised B lives in budget.json, read below
    if plateau is not None and "steps" in plateau and plateau["steps"].notna().any():
        steps = int(plateau["steps"].dropna().median())
    if raised:
        steps = int(raised["steps"])
        head = (f"{steps} on the cpu profile, raised once from {int(raised['raised_from'])} "
                f"because {str(raised.get('reason', '')).rstrip('.')}")
        if verdict is BudgetVerdict.PENDING:
            return (head + (f"; {done} of the {measured} models the budget seed has labelled at "
                            f"it so far plateaued" if measured else ""))
        short = ("" if verdict is BudgetVerdict.STANDS else
                 f", so fewer than {MIN_PLATEAUED} of the {len(models)} can plateau at it and "
                 "the book names those that do not")
        return (head + f"; final (the budget is raised once): {done} of the {measured} models "
                f"the budget seed measured plateaued at it{short}")
    if verdict is BudgetVerdict.STANDS:
        return (f"{steps} on the cpu profile, kept: {done} of the {measured} models the "
                f"budget seed measured plateaued at it")
    if verdict is BudgetVerdict.RAISED:
        return (f"{steps} on the cpu profile, to be raised once: only {done} of the "
                f"{measured} models the budget seed measured plateaued at it")
    so_far = (f"; {done} of the {measured} of the {len(models)} models it has labelled so far "
              f"plateaued" if measured else "")
    return f"{steps} on the cpu profile, provisional until the budget seed{so_far}"


def budget_deviation(plateau: pd.DataFrame | None = None,
                     raised: dict[str, Any] | None = None) -> Deviation:
    """The protocol's budget: optimiser steps, the same for every model, with a schedule that
    ends at the budget (values from :mod:`spineseg_core.training.config`), and its status from
    the budget seed's ``plateau.csv`` when given."""
    from spineseg_core.training.config import PAPER_STEPS

    return Deviation(
        "Budget and learning-rate schedule",
        "about 120 epochs (its Figure 19); Adam at 5e-4, no schedule stated",
        f"the same number of optimiser steps for every model, 2D, 2.5D and 3D alike "
        f"({budget_status(plateau, raised)}; {PAPER_STEPS} on "
        "the paper profile), Adam from 5e-4 with a cosine decay to 0 at the budget, stepped "
        "per optimiser step",
        "a model's batch item differs (a slice, a stack, a volume), so equal epochs gave the "
        "3D U-Net a third of the 2D models' steps; a rate that ends at the budget makes every "
        "run a complete one, so runs at B and B/2 can be compared to tell a plateau from "
        "under-training (a flat tail under a decaying rate proves nothing)")


def exception_deviations() -> list[Deviation]:
    """The study's budget exceptions (:data:`spineseg_core.training.budgets.BUDGET_EXCEPTIONS`),
    one row per model and change, naming every profile it applies to."""
    from spineseg_core.models import model_info
    from spineseg_core.training.budgets import BUDGET_EXCEPTIONS

    profiles: dict[tuple[str, str, str, str], list[str]] = {}
    for e in BUDGET_EXCEPTIONS:
        ours = ", ".join(f"{k}={v}" for k, v in e.params.items())
        profiles.setdefault((e.model, ours, e.paper, e.reason), []).append(e.profile)
    return [Deviation(f"{model_info(model).display_name} on the {and_join(names)} "
                      f"profile{'s' if len(names) > 1 else ''}", paper, ours, reason)
            for (model, ours, paper, reason), names in profiles.items()]


def deviations_table(setup: Setup | None = None, plateau: pd.DataFrame | None = None,
                     raised: dict[str, Any] | None = None) -> pd.DataFrame:
    """:func:`deviations` as a frame with columns ``aspect, paper, ours, reason``."""
    return pd.DataFrame([d.__dict__ for d in deviations(setup, plateau, raised)])
