"""Data: dataset layouts, readers, preprocessing cache, slices, splits, augmentation, checks.

Files (phantom or real) → :class:`VolumeCache` → :class:`SliceDataset`; :func:`build_datasets`
does all of it for one training run. Knows nothing of models.
"""

from spineseg_core.data.augment import AugmentConfig, InPlaneMotion, SliceAugmentation, build_augmentation
from spineseg_core.data.bundle import DataBundle, build_datasets
from spineseg_core.data.cache import VolumeCache
from spineseg_core.data.check import CheckReport, check_dataset
from spineseg_core.data.layout import CaseRef, Layout, detect_layout, list_cases, scan_cases
from spineseg_core.data.preprocess import (
                         PREPROCESS_VERSION,
                         PercentileNormalisation,
                         RandomSpineBand,
                         crop_box_from_mask,
                         crop_volume,
                         normalise_percentile,
                         preprocess_volume,
                         resample_inplane,
                         spine_band_box,
                         spine_centre_column,
)
from spineseg_core.data.readers import SPIDER_LUT, Volume, load_case, map_spider_labels, read_array
from spineseg_core.data.slices import SliceDataset, VolumeDataset
from spineseg_core.data.splits import (
                         Split,
                         get_or_create_splits,
                         get_or_create_test_split,
                         load_splits,
                         make_folds,
                         make_split,
                         save_splits,
)

__all__ = [
    "AugmentConfig", "InPlaneMotion", "SliceAugmentation", "build_augmentation",
    "DataBundle", "build_datasets", "VolumeCache", "CheckReport", "check_dataset",
    "CaseRef", "Layout", "detect_layout", "list_cases", "scan_cases",
    "PREPROCESS_VERSION", "PercentileNormalisation", "crop_box_from_mask", "crop_volume",
    "RandomSpineBand", "spine_band_box", "spine_centre_column",
    "normalise_percentile",
    "preprocess_volume", "resample_inplane",
    "SPIDER_LUT", "Volume", "load_case", "map_spider_labels", "read_array",
    "SliceDataset", "Split", "VolumeDataset", "get_or_create_splits", "get_or_create_test_split",
    "load_splits",
    "make_folds", "make_split",
    "save_splits",
]
