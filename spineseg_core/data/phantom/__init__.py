"""The procedural spine phantom, the study's embedded default dataset, as its own package.

:mod:`.params` holds its knobs, :mod:`.geometry` draws a subject's anatomy (and its hard case),
:mod:`.render` turns the anatomy into T2-like pixels, :mod:`.generate` writes cases and whole
phantom folders in the MRSpineSeg layout, :mod:`.hard` names the hard-case sets and their
manifest, and :mod:`.calibration` with :mod:`.real_sample` compares the phantom's intensities
with a real T2 scan. The names below are what the rest of the package uses to make a phantom.
"""

from spineseg_core.data.phantom.generate import (
    DEFAULT_PRESENCE,
    GENERATOR,
    MARKER,
    PHANTOM_VERSION,
    PhantomCase,
    PhantomParams,
    TissueCode,
    ensure_phantom,
    generate_case,
    phantom_config,
    sample_presence,
    write_phantom,
)

__all__ = [
    "DEFAULT_PRESENCE", "GENERATOR", "MARKER", "PHANTOM_VERSION", "PhantomCase", "PhantomParams",
    "TissueCode", "ensure_phantom", "generate_case", "phantom_config", "sample_presence",
    "write_phantom",
]
