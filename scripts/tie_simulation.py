"""Measure how often the verdict rules call a simulated exact tie (issue 24, part 6).

Prints, per seed SD, the share of firm verdicts (an interval excluding 0) for the study's
intervals (t-seeds) and for the bootstrap used before (exp-seeds), for a pair of models and for
a difference of two families of two models (3 seeds, 40 subjects;
:mod:`spineseg_core.study.tie_simulation`). Usage:
``python scripts/tie_simulation.py [--ties 300] [--n-boot 1000]``.
"""

from __future__ import annotations

import argparse

from spineseg_core.study.tie_simulation import Method, firm_rate

SDS = (0.0, 0.03, 0.05, 0.08, 0.10, 0.13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ties", type=int, default=300)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    print("seed_sd,kind,method,firm_rate")
    for sd in SDS:
        for family in (False, True):
            for method in Method:
                rate = firm_rate(sd, args.ties, method, family=family, seed=11 + family,
                                 n_boot=args.n_boot)
                print(f"{sd},{'families' if family else 'pair'},{method},{rate:.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
