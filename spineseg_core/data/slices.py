"""The views a model is fed: every sagittal slice of a set of volumes as one torch Dataset
(:class:`SliceDataset`, optionally with its neighbours as channels for a 2.5D model), or every
volume whole (:class:`VolumeDataset`, for a 3D model)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from spineseg_core.data.preprocess import RandomSpineBand, spine_centre_column
from spineseg_core.data.readers import Volume

SliceItem = dict[str, Any]
"""``image`` FloatTensor (C, H, W), ``mask`` LongTensor (H, W), ``case_id`` str, ``slice_index`` int."""


def neighbour_indices(s: int, num_slices: int, context: int) -> list[int]:
    """The slices a 2.5D input stacks for slice ``s``: ``context // 2`` on each side in order,
    an index past either edge of the volume replaced by the edge slice (a repeated slice says
    "no more anatomy this way" without inventing any)."""
    if context < 1 or context % 2 == 0:
        raise ValueError(f"context must be odd and >= 1, got {context}")
    k = context // 2
    return [min(max(i, 0), num_slices - 1) for i in range(s - k, s + k + 1)]


class SliceDataset(Dataset):
    """All sagittal slices of ``volumes``, in volume order then slice order.

    ``transform`` (e.g. :func:`~spineseg_core.data.augment.build_augmentation`) receives and
    returns an item dict. ``crop`` (training sets only: it reads the reference mask) cuts each
    slice to a random band around its volume's spine before the transform. With
    ``labelled_only=True`` (default) volumes without a mask are left out; otherwise their items
    carry no ``mask`` key. ``context`` > 1 (odd) makes the image the slice and its neighbours
    as channels, ``(context, H, W)`` (:func:`neighbour_indices`), for a 2.5D model.
    """

    def __init__(self, volumes: Sequence[Volume], transform: Callable[[SliceItem], SliceItem] | None = None,
                 *, crop: RandomSpineBand | None = None, labelled_only: bool = True,
                 context: int = 1) -> None:
        neighbour_indices(0, 1, context)  # checks the context
        self.context = context
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
    def n_slices(self) -> int:
        """Slices in the dataset (its length)."""
        return len(self.index)

    @property
    def case_ids(self) -> list[str]:
        return [v.case_id for v in self.volumes]

    def __getitem__(self, i: int) -> SliceItem:
        vi, s = self.index[i]
        vol = self.volumes[vi]
        rows = neighbour_indices(s, vol.num_slices, self.context) if self.context > 1 else [s]
        item: SliceItem = {
            "image": torch.from_numpy(np.array(vol.image[rows], dtype=np.float32)),
            "case_id": vol.case_id,
            "slice_index": s,
        }
        if vol.mask is not None:
            item["mask"] = torch.from_numpy(vol.mask[s].astype(np.int64))
        if self.crop is not None:
            item["image"], item["mask"] = self.crop(item["image"], item["mask"],
                                                    self._centres[vi])
        return self.transform(item) if self.transform is not None else item


VolumeItem = dict[str, Any]
"""``image`` FloatTensor (1, D, H, W), ``mask`` LongTensor (D, H, W) (both padded to the
dataset's ``depth``), ``case_id`` str, ``num_slices`` int (the volume's own slices)."""


class VolumeDataset(Dataset):
    """Every volume of ``volumes`` whole, for a 3D model; its slices are the same as
    :class:`SliceDataset`'s, so a 3D run is scored slice by slice like a 2D one.

    Training volumes are padded across slices to one ``depth`` (default: the deepest volume)
    with zero images and background masks, so that a batch stacks; ``num_slices`` says which
    slices are the volume's own (evaluation drops the rest). A scored set takes
    ``own_depth=True``: each volume comes at its own depth, one to a batch
    (:attr:`batch_limit`), so that a subject's prediction does not depend on the other subjects
    of its set (padding reaches the volume's edge slices through the deeper layers) and is the
    one ``spineseg predict`` gives for the same image; the model itself then pads it with zero
    slices to the training depth, as in training
    (:class:`~spineseg_core.models.base.VolumeSegmentationModel`'s ``min_depth``). Training
    augmentation is the 2D runs': each slice goes through ``transform`` as a slice item,
    independently (the same per-slice probabilities), and ``crop`` cuts the whole volume to one
    random band around its spine.
    """

    def __init__(self, volumes: Sequence[Volume], transform: Callable[[SliceItem], SliceItem] | None = None,
                 *, crop: RandomSpineBand | None = None, depth: int | None = None,
                 own_depth: bool = False) -> None:
        self.volumes = [v for v in volumes if v.mask is not None]
        deepest = max((v.num_slices for v in self.volumes), default=0)
        if own_depth and depth is not None:
            raise ValueError("own_depth=True pads nothing: give no depth")
        self.own_depth = own_depth
        self.depth = deepest if depth is None else depth
        if self.depth < deepest:
            raise ValueError(f"depth {self.depth} is less than the deepest volume's "
                             f"{deepest} slices")
        self.transform = transform
        self.crop = crop
        self._centres = [spine_centre_column(v.mask) if crop is not None else None
                         for v in self.volumes]

    def __len__(self) -> int:
        return len(self.volumes)

    @property
    def batch_limit(self) -> int | None:
        """The most items a batch can stack: 1 when each volume keeps its own depth."""
        return 1 if self.own_depth else None

    @property
    def n_slices(self) -> int:
        """The volumes' own slices (padding left out)."""
        return sum(v.num_slices for v in self.volumes)

    @property
    def case_ids(self) -> list[str]:
        return [v.case_id for v in self.volumes]

    def __getitem__(self, i: int) -> VolumeItem:
        vol = self.volumes[i]
        n = vol.num_slices
        depth = n if self.own_depth else self.depth
        image = torch.zeros((1, depth, *vol.image.shape[1:]), dtype=torch.float32)
        mask = torch.zeros((depth, *vol.image.shape[1:]), dtype=torch.int64)
        image[0, :n] = torch.from_numpy(np.array(vol.image, dtype=np.float32))
        mask[:n] = torch.from_numpy(vol.mask.astype(np.int64))
        if self.crop is not None:
            image, mask = self.crop(image, mask, self._centres[i])
        if self.transform is not None:
            image = image.clone()
            for s in range(n):
                out = self.transform({"image": image[:, s], "mask": mask[s],
                                      "case_id": vol.case_id, "slice_index": s})
                image[:, s] = out["image"]
        return {"image": image, "mask": mask, "case_id": vol.case_id, "num_slices": n}
