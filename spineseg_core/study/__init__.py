"""The study: many runs through papermill, locally or on Slurm (:mod:`.runner`, :mod:`.slurm`,
:mod:`.progress`), their aggregation into the bundle the book reads (:mod:`.aggregate`), the
paper's tables (:mod:`.paper`) and the loss-variant study (:mod:`.loss_study`).
"""
