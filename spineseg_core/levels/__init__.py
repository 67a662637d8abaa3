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

What the book makes of these tables lives with the rest of the book's analysis, which imports
this package (never the other way round): the rule "relabelling from the sacrum improves the
all-levels-right rate" in :mod:`spineseg_core.report.level_verdict`, the chapter's figures in
:mod:`spineseg_core.report.level_figures` and its page in
:mod:`spineseg_core.report.pages.levels`.

Nothing here is part of the source fingerprint: the runs' numbers do not depend on it.
"""
