"""One training run: its configuration and profiles (:mod:`.config`), the loop (:mod:`.loop`), the
one training step (:mod:`.step`), the resumable state (:mod:`.state`), precision and device
(:mod:`.precision`, :mod:`.device`), evaluation (:mod:`.evaluate`), the run folder
(:mod:`.run_folder`) and prediction from a finished run (:mod:`.predict`).

It imports nothing from :mod:`spineseg_core.measure` or :mod:`spineseg_core.study`.
"""
