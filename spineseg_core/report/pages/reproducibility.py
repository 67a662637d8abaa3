"""Reproducibility: the versions, fingerprints and commands behind the bundle.

The page function of ``book/reproducibility.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from spineseg_core.fingerprint import REPO
from spineseg_core.report.bundle import MISSING, Bundle
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.tables import Column, columns_for, fold_constant, table_html

BOOK_PACKAGES = ("spineseg", "torch", "numpy", "pandas", "scipy", "torchio", "nibabel",
                 "SimpleITK", "matplotlib", "seaborn", "papermill", "jupyter-book", "myst-nb",
                 "submitit")
"""The packages whose versions the reproducibility chapter lists for the book's build."""


def studies_text(studies: dict[str, Any]) -> str | None:
    """``bundle.json``'s separate studies in words, for the bundle's record table: each one's group, runs,
    models and code version (None when there are none: a dash on the page)."""
    from spineseg_core.fingerprint import describe

    parts = []
    for name, st in (studies or {}).items():
        code = (describe(st["source_fingerprints"]) if st.get("source_fingerprints")
                else "code not recorded")
        parts.append(f"{name}: group {st.get('group', name)}, {st.get('n_runs', 0)} runs of "
                     f"{len(st.get('models', []))} models ({', '.join(st.get('models', []))}), "
                     f"code {code}")
    return "; ".join(parts) or None


RERUN_SCRIPTS = {"main": "scripts/rerun_cpu_study.sh", "context": "scripts/context_study.sh"}
"""The scripts that remake the committed records with the code that made them, by study."""

_PIN = re.compile(r"^(CODE_COMMIT|FINGERPRINT)=(?:\$\{CODE_COMMIT:-)?([0-9a-f]+)\}?\s*$", re.M)


def script_pin(script: Path) -> tuple[str, str] | None:
    """The commit a rerun script checks out and the fingerprint it demands of that code
    (``CODE_COMMIT``, ``FINGERPRINT``); ``None`` when the script or either pin is absent."""
    if not script.is_file():
        return None
    pins = dict(_PIN.findall(script.read_text()))
    if not {"CODE_COMMIT", "FINGERPRINT"} <= set(pins):
        return None
    return pins["CODE_COMMIT"], pins["FINGERPRINT"]


def book_commit(repo: Path = REPO) -> str:
    """The commit this book is built from (short), marked when the checkout has changes."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    head = git("rev-parse", "--short=7", "HEAD")
    if not head:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" with uncommitted changes" if dirty else "")


def records_text(bundle: dict[str, Any], repo: Path = REPO) -> str:
    """Which commit and fingerprint made the bundle's runs, per study, the script that remakes
    them with that code, and whether the script's pin agrees with the bundle's records."""
    studies = {"main": bundle, **(bundle.get("studies") or {})}
    parts = []
    for study, info in studies.items():
        fingerprints = [str(f)[:12] for f in (info.get("source_fingerprints") or {})]
        script = RERUN_SCRIPTS.get(study)
        pin = script_pin(repo / script) if script else None
        what = "The main runs" if study == "main" else f"The {study} study's runs"
        if not fingerprints:
            parts.append(f"{what} recorded no code fingerprint.")
        elif pin is None:
            parts.append(f"{what} have fingerprint {', '.join(fingerprints)}; no script here "
                         "pins the code that made them.")
        else:
            agree = fingerprints == [pin[1]]
            parts.append(f"{what} were made by commit {pin[0][:7]} (fingerprint "
                         f"{', '.join(fingerprints)}); `{script}` checks that commit out and "
                         + ("verifies its fingerprint before it runs anything."
                            if agree else f"expects fingerprint {pin[1]}, which does NOT match "
                            "these records."))
    return " ".join(parts)


PLATEAU_SCRIPTS = ("scripts/budget_seed.sh", "scripts/plateau_rerun.py")
"""The scripts that make the runs at the plateau budget (issues 24 and 25), in order."""


def plateau_records_text(folder: Path, stamps: pd.DataFrame | None = None) -> str:
    """The runs at the plateau budget (``folder``: ``results/plateau/``): the commit and
    fingerprint that ``CODE`` pins, how many records there are per group and per machine type,
    whether every one carries the pinned fingerprint (its model's own pin's, ``CODE.<model>``,
    for a model that has one; hard-case scores counted apart), the models with a pin of their
    own and the records they superseded, and the scripts that remake them. ``stamps``: the
    records' :func:`~spineseg_core.study.machines.record_stamps`, read here when not given."""
    from spineseg_core.fingerprint import read_pin, short
    from spineseg_core.models import model_info
    from spineseg_core.report.bundle import and_join
    from spineseg_core.study.machines import record_stamps
    from spineseg_core.study.schedule import SUPERSEDED, mend_pins

    pin = folder / "CODE"
    if not pin.is_file():
        return ("The budget seed (every model at the plateau budget and at half of it, "
                f"`{PLATEAU_SCRIPTS[0]}`) has not started: no code is pinned for it yet.")
    commit, fingerprint = read_pin(pin)
    stamps = record_stamps(folder / "runs") if stamps is None else stamps
    runs = stamps[~stamps["hard"]]
    scores = int(stamps["hard"].sum())
    groups = runs["group"].value_counts().to_dict()
    processors = runs["machine"].value_counts().to_dict()
    own = mend_pins(folder)
    wanted = runs["model"].map(lambda m: own[m][1] if m in own else fingerprint)
    off = int((runs["source_fingerprint"] != wanted).sum())
    n = sum(groups.values())
    that = "its pinned fingerprint" if own else "that fingerprint"
    verdict = (f"every one carries {that}." if not off else
               f"{off} of them {'does' if off == 1 else 'do'} NOT carry {that}.")
    counted = (f"{n} run record{'s' * (n != 1)} so far ("
               + and_join([f"{k} in group {g}" for g, k in sorted(groups.items())])
               + "), made on " + and_join([f"{p} ({k})" for p, k in sorted(processors.items())])
               + "; " + verdict if n else "no run record yet.")
    if scores:
        counted += f" Beside them, {scores} hard-case score{'s' * (scores != 1)}."
    if own:
        old = len(record_stamps(folder / SUPERSEDED / commit[:12]))
        counted += (" " + and_join([f"The {model_info(m).display_name} runs from a pin of its "
                                    f"own, commit {c[:7]} "
                                    f"(fingerprint {short(f)}, `results/plateau/CODE.{m}`)"
                                    for m, (c, f) in sorted(own.items())])
                    + ", a commit with the mend of a defect the study's pin has on that model's "
                    "path alone (`scripts/check_mend.py`)"
                    + (f"; the {old} record{'s' * (old != 1)} it superseded "
                       f"{'is' if old == 1 else 'are'} kept in `results/plateau/{SUPERSEDED}/`."
                       if old else "."))
    return (f"The runs at the plateau budget (the budget seed, then the re-run) are made by "
            f"commit {commit[:7]} (fingerprint {short(fingerprint)}), pinned in "
            f"`results/plateau/CODE`: {counted} `{PLATEAU_SCRIPTS[0]}` and then "
            f"`{PLATEAU_SCRIPTS[1]}` check that commit out into `.study-code/`, verify its "
            "fingerprint, skip every run already recorded and commit each new record as it "
            "lands.")


def plateau_plan(b: Bundle) -> pd.DataFrame | None:
    """Where the runs at the plateau budget stand, per part (:func:`spineseg_core.study.
    schedule.plan_status`): the plan at the budget in force (``budget.json`` of the plateau
    bundle, else the code's ``CPU_STEPS``), the records of ``results/plateau/runs`` and the
    wall-clock hours left at the step rates those records measured (with the superseded ones:
    :func:`~spineseg_core.study.schedule.rate_stamps`), the bundle's benchmark
    rates (``bench.csv``) scaled to them for the models not yet trained, the 3D U-Net by its
    ratio to the others in the bundle's context runs
    (:func:`~spineseg_core.study.schedule.plan_rates`; the factor in column ``factor``);
    ``None`` before the seed started (no pin) or without a results folder. The models held
    under the pinned commit (:func:`~spineseg_core.study.schedule.held`) are counted apart,
    their reasons in the ``held_why`` column; the models with a code version of their own
    (:func:`~spineseg_core.study.schedule.mend_pins`) in ``own_pins`` (``model commit[:7]``,
    joined by "; ")."""
    from spineseg_core.fingerprint import read_pin
    from spineseg_core.measure.speed import bench_seconds_per_step
    from spineseg_core.report.pages.convergence import plateau_bundle
    from spineseg_core.study.budget_raise import budget_in_force
    from spineseg_core.study.schedule import (
        held,
        mend_pins,
        plan_rates,
        plan_status,
        rate_stamps,
        rerun_plan,
        seed_plan,
        wall_rates,
    )
    from spineseg_core.training.config import CPU_STEPS

    folder = plateau_bundle(b).folder
    if folder is None or not (folder / "CODE").is_file():
        return None
    steps = budget_in_force(folder, CPU_STEPS)
    runs = seed_plan(steps, steps != CPU_STEPS) + rerun_plan(steps, steps != CPU_STEPS)
    bench = b.csv("bench.csv")
    measured = bench_seconds_per_step(bench) if bench is not None and len(bench) else {}
    rate, factor = plan_rates(measured, wall_rates(rate_stamps(folder)), b.csv("context.csv"),
                              sorted({r.spec.model for r in runs}))
    own = mend_pins(folder)
    holds = held(read_pin(folder / "CODE")[0], mended=own)
    why = "; ".join(f"{model}: {reason}" for model, reason in sorted(holds.items()))
    return plan_status(runs, folder / "runs", rate, holds=holds).assign(
        steps=steps, factor=factor, held_why=why, study_pin=read_pin(folder / "CODE")[0][:7],
        own_pins="; ".join(f"{m} {c[:7]}" for m, (c, _) in sorted(own.items())))


def plan_html(plan: pd.DataFrame | None) -> Any:
    """:func:`plateau_plan` as the chapter's table."""
    from spineseg_core.report.tables import Kind

    if plan is None:
        return Missing("plateau/CODE (the budget seed's pin)")
    shown = plan.assign(need=plan["required"].map({True: "needed", False: "as the cost allows"}))
    unpriced = sorted({m for u in plan["unpriced"] if u for m in u.split(", ")})
    factor = plan["factor"].iloc[0] if "factor" in plan else None
    scaled = (f"the others at this bundle's benchmark rates (bench.csv, model only) times "
              f"{factor:.2f}, the median ratio of the two rates over the models with both"
              if factor is not None and pd.notna(factor) else
              "the others at this bundle's benchmark rates (bench.csv, model only; no model "
              "has both rates yet to scale them by)")
    notes = [f"The plan at B = {int(plan['steps'].iloc[0]):,} steps (scripts/plateau_rerun.py "
             "--dry-run gives it run by run). Hours are wall clock, validation included: a "
             "model at the median seconds per step of its own runs recorded at the plateau "
             f"budget (on the machines they name; with those a model's own pin superseded, "
             f"whose training it repeats), {scaled}; a model with neither (the 3D "
             "U-Net before its first run here) at its seconds per step over each other "
             "model's in this bundle's context runs (context.csv), times that model's rate, "
             "the median of those. Another processor type may be faster or slower."]
    if unpriced:
        notes.append(f"Not priced (no measured rate): {', '.join(unpriced)}.")
    why = plan["held_why"].iloc[0] if "held_why" in plan else ""
    if why:
        notes.append(f"Held (counted in To do, not in the hours; no run of them starts): {why}.")
    own = plan["own_pins"].iloc[0] if "own_pins" in plan else ""
    if own:
        notes.append(f"Every run is made from the study's pinned commit "
                     f"{plan['study_pin'].iloc[0]} (plateau/CODE) except those of a model with "
                     f"a pin of its own, made from the commit that mends its hold: {own} "
                     "(plateau/CODE.<model>; what the two versions share: plateau/"
                     "mend_check.csv).")
    return table_html(shown, [
        Column("part", "Part"), Column("what", "What it makes"), Column("need", "For issue 25"),
        Column("runs", "Runs", Kind.INTEGER), Column("recorded", "Recorded", Kind.INTEGER),
        Column("to_do", "To do", Kind.INTEGER), Column("held", "Held", Kind.INTEGER),
        Column("hours_left", "Hours left (wall clock)", Kind.NUMBER, 1)], notes=notes)


def machines_html(stamps: pd.DataFrame, study: str) -> Any:
    """The runs of ``stamps`` (the records' :func:`~spineseg_core.study.machines.
    record_stamps`) per machine type, with their training hours and runs per family; ``study``
    names them in the footnote."""
    from spineseg_core.report.tables import Kind
    from spineseg_core.study.machines import MACHINE_COLUMNS, machine_table

    table = machine_table(stamps)
    if table.empty:
        return Missing("runs/ (run records)")
    families = [c for c in table.columns if c not in MACHINE_COLUMNS]
    columns = [Column("machine", "Machine type"), Column("runs", "Runs", Kind.INTEGER),
               Column("models", "Models", Kind.INTEGER),
               *[Column(f, f"Runs, {f}", Kind.INTEGER) for f in families],
               Column("train_hours", "Training (h)", Kind.NUMBER, 1)]
    return table_html(table, columns, notes=[
        f"The records of {study} (hard-case scores left out: they are runs scored again), by "
        "the machine each recorded in its params.json; training hours are wall clock on that "
        "machine, validation included."])


@page("reproducibility")
def reproducibility_page(b: Bundle) -> Page:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from spineseg_core.fingerprint import describe, short
    from spineseg_core.report.pages.convergence import plateau_bundle
    from spineseg_core.study.machines import record_stamps

    bundle, runs = b.json("bundle.json") or {}, b.csv("runs.csv")
    name = b.folder.name if b.folder is not None else None
    seed = plateau_bundle(b)
    seed_stamps = record_stamps(seed.folder / "runs" if seed.folder is not None else None)
    versions = bundle.get("source_fingerprints") or {}
    out: Page = {
        "rp_sha": bundle.get("bundle_sha256", MISSING),
        "rp_commit": bundle.get("git_commit") or MISSING,
        "rp_created": bundle.get("created", MISSING),
        "rp_profile": name or MISSING,
        "rp_path": f"results/{name}/" if name else MISSING,
        "rp_nfiles": str(len(bundle.get("files", {}))),
        "rp_run_commits": ", ".join(c[:10] for c in bundle.get("run_commits", [])) or MISSING,
        "rp_fingerprint": describe(versions) if versions else "not recorded (an older bundle)",
        "rp_book_commit": book_commit(),
        "rp_records": MarkdownText(records_text(bundle) if bundle else
                                   "No results bundle was found."),
        "rp_plateau": MarkdownText(plateau_records_text(seed.folder, seed_stamps)
                                   if seed.folder is not None
                                   else "No results folder was found."),
        "rp_plateau_plan": plan_html(plateau_plan(b)),
        "rp_machines": machines_html(record_stamps(b.folder / "runs" if b.folder is not None
                                                   else None), "this bundle"),
        "rp_plateau_machines": machines_html(seed_stamps, "the runs at the plateau budget"),
    }
    if bundle:
        info = [(k, (", ".join(map(str, v)) or None) if isinstance(v, list)
                 else describe(v) if k == "source_fingerprints"
                 else "; ".join(f"{m}: {describe({o['source_fingerprint']: o['runs']})}"
                                for m, o in v.items()) if k == "own_code"
                 else studies_text(v) if k == "studies" else str(v))
                for k, v in bundle.items() if k != "files"]
        fields = pd.DataFrame(info, columns=["field", "value"])
        out["rp_bundle"] = table_html(fields, [Column("field", "Field"), Column("value", "Value")])
        files = pd.DataFrame(bundle.get("files", {}).items(), columns=["file", "sha256"])
        out["rp_files"] = table_html(files, [Column("file", "File"), Column("sha256", "SHA-256")])
    else:
        out["rp_bundle"] = out["rp_files"] = Missing("bundle.json")
    if runs is not None and len(runs):
        runs = runs.assign(code=runs["source_fingerprint"].map(short)) \
            if "source_fingerprint" in runs else runs
        kept, notes = fold_constant(runs, columns_for(runs, {
            "display_name": "Model", "seed": "Seed", "fold": "Fold", "device": "Device",
            "precision": "Precision", "processor": "Processor", "code": "Code",
            "epochs_completed": "Epochs", "train_seconds": "Training (s)"}, 0))
        out["rp_runs"] = table_html(runs, kept, notes=[
            *notes, "Each run's record: runs/<group>/<model>/seed_<seed>/fold_<fold>/ in the "
                    "results folder."])
    else:
        out["rp_runs"] = Missing("runs.csv")
    vers = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in BOOK_PACKAGES:
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = "not installed"
    out["rp_env"] = table_html(pd.DataFrame(vers.items(), columns=["package", "version"]),
                               [Column("package", "Package"),
                                Column("version", "Version (book build)")])
    return out
