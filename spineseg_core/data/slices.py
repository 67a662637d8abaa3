"""The 2D view of the study: every sagittal slice of a set of volumes as one torch Dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from spineseg_core.data.preprocess import RandomSpineBand, spine_centre_column
from spineseg_core.data.readers import Volume

SliceItem = dict[str, Any]
"""``image`` FloatTensor (1, H, W), ``mask`` LongTensor (H, W), ``case_id`` str, ``slice_index`` int."""


class SliceDataset(Dataset):
    """All sagittal slices of ``volumes``, in volume order then slice order.

    ``transform`` (e.g. :func:`~spineseg_core.data.augment.build_augmentation`) receives and
    returns an item dict. ``crop`` (training sets only: it reads the reference mask) cuts each
    slice to a random band around its volume's spine before the transform. With
    ``labelled_only=True`` (default) volumes without a mask are left out; otherwise their items
    carry no ``mask`` key.
    """

    def __init__(self, volumes: Sequence[Volume], transform: Callable[[SliceItem], SliceItem] | None = None,
                 *, crop: RandomSpineBand | None = None, labelled_only: bool = True) -> None:
        self.volumes = [v for v in volumes if v.mask is not None or not labelled_only]
        if crop is not None and any(v.mask is None for v in self.volumes):
            raise ValueError("a cropped slice dataset needs every volume's mask")
        self.transform = transform
        self.crop = crop
        self._centres = [spine_centre_column(v.mask) if crop is not None else None
                         for v in self.volumes]
        self.index: list[tuple[int, int]] = [
            (vi, s) for vi, v in enumerate(self.volumes) for s in range(v.num_slices)]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def case_ids(self) -> list[str]:
        return [v.case_id for v in self.volumes]

    def __getitem__(self, i: int) -> SliceItem:
        vi, s = self.index[i]
        vol = self.volumes[vi]
        item: SliceItem = {
            "image": torch.from_numpy(np.array(vol.image[s], dtype=np.float32))[None],
            "case_id": vol.case_id,
            "slice_index": s,
        }
        if vol.mask is not None:
            item["mask"] = torch.from_numpy(vol.mask[s].astype(np.int64))
        if self.crop is not None:
            item["image"], item["mask"] = self.crop(item["image"], item["mask"],
                                                    self._centres[vi])
        return self.transform(item) if self.transform is not None else item
