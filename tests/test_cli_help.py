"""Every option of every ``spineseg`` sub-command has help that names its default and, where
there is a fixed set, its valid values."""

from __future__ import annotations

import argparse

import pytest

from spineseg_core.cli import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


SUBPARSERS = _subparsers()


@pytest.mark.parametrize("name", sorted(SUBPARSERS))
def test_every_option_has_help_with_its_default(name):
    parser = SUBPARSERS[name]
    formatter = parser._get_formatter()
    missing, no_default = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        if not (action.help or "").strip():
            missing.append(label)
            continue
        shown = formatter._get_help_string(action)
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in shown:
            no_default.append(label)
    assert not missing, f"spineseg {name}: options without help: {', '.join(missing)}"
    assert not no_default, f"spineseg {name}: help without the default: {', '.join(no_default)}"


def test_train_help_shows_profile_defaults_and_valid_values():
    text = " ".join(SUBPARSERS["train"].format_help().split())
    assert "(default: 1 (smoke), 6 (cpu), 120 (paper))" in text  # --epochs
    assert "(default: none (smoke), 5880 (cpu), 52200 (paper))" in text  # --steps
    assert "--loss {dice,ce,weighted_ce,dice_ce}" in text
    assert "--device {auto,cpu,cuda}" in text
    assert "--keep-last-checkpoint" in text and "transunet" in text


def test_a_default_is_added_once():
    text = " ".join(SUBPARSERS["study"].format_help().split())
    assert "--profile PROFILE training profile (default: cpu) " in text
    assert "--seeds S [S ...] training seeds: one run per model and seed (default: 0)" in text
