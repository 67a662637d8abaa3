"""Measurement: parameters, MACs and memory (:mod:`.efficiency`), speed of the models and their
data path (:mod:`.speed`, :mod:`.timing`), and the project against MONAI (:mod:`.vs_monai`).
``spineseg bench`` and ``spineseg efficiency`` are the command-line faces. Training never
imports this package. Inside it, :mod:`.timing` (the instruments) imports no other module of
it, :mod:`.efficiency` only :mod:`.timing`, and :mod:`.speed` and :mod:`.vs_monai` the two.

MONAI is an optional extra (``bench``): it is imported inside the functions that need it.
"""
