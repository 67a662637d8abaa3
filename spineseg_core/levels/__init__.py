"""Does a model name the right level? Level identification and relabelling from the sacrum.

Dice hides a one-level shift: a well-drawn L4 labelled L3 scores 0 for both classes, as if both
were missed. This package measures the naming itself, per subject in 3D, from the predictions a
run keeps in its committed record (no retraining), and tries the classic repair, counting the
levels upwards from the sacrum:

- :mod:`~spineseg_core.levels.anatomy`: the anatomical order of the labels, bottom-up, derived
  from :mod:`spineseg_core.labels`;
- :mod:`~spineseg_core.levels.identify`: per reference vertebra and disc, the label the
  prediction gives most of its voxels, and what that answer is (correct, one level up or down,
  another level, missed);
- :mod:`~spineseg_core.levels.relabel`: connected components of the predicted vertebrae and
  discs, ordered upwards from the sacrum and renamed in anatomical order, with a status that
  says when it cannot work (no sacrum, merged or split components...);
- :mod:`~spineseg_core.levels.volumes`: a record's test slices put back into subject volumes;
- :mod:`~spineseg_core.levels.stats`: rates with intervals over seeds and subjects, from the
  study's hierarchical bootstrap (:mod:`spineseg_core.study.aggregate`);
- :mod:`~spineseg_core.levels.study`: ``spineseg levels``, the tidy tables of any group of
  records (or run folders);
- :mod:`~spineseg_core.levels.verdict`: the rule "relabelling from the sacrum improves the
  all-levels-right rate", with its three outcomes;
- :mod:`~spineseg_core.levels.figures` and :mod:`~spineseg_core.levels.page`: the book's level
  chapter (``book/levels.md``), its figures and the values it glues.

Nothing here is part of the source fingerprint: the runs' numbers do not depend on it.
"""
