"""spineseg: a reproducible study of twelve deep learning models for spine MRI segmentation.

The package is the typed core of the study: data (MRSpineSeg, SPIDER and a procedural
phantom), the twelve models, losses, metrics, training, evaluation and efficiency probes.
Notebooks and the book sit on top and use only its public names.
"""

__version__ = "0.1.0"
