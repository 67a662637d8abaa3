"""2.5D models: U-Net and DeepLabv3+ fed a slice and its neighbours as input channels.

A 2D model sees one sagittal slice and must name a level from that slice alone; the paper's
future work points to 3D context because information between slices is lost. The cheapest way
to give a 2D network that context is to stack the ``context // 2`` slices on each side as extra
input channels (edge slices repeat the outermost one, :class:`~spineseg_core.data.slices.
SliceDataset`) and predict the middle slice. The networks are the study's own U-Net and
DeepLabv3+, unchanged but for the first convolution's input channels, so a difference from the
2D runs is the context's.
"""

from __future__ import annotations

from torch import nn

from spineseg_core.models.deeplabv3plus import DeepLabV3Plus
from spineseg_core.models.registry import Family, InputKind, register_model
from spineseg_core.models.unet import UNet

for _context in (3, 5):

    def _unet(in_channels: int = _context, num_classes: int = 20, **overrides) -> nn.Module:
        return UNet(in_channels, num_classes, **overrides)

    def _deeplab(in_channels: int = _context, num_classes: int = 20, **overrides) -> nn.Module:
        return DeepLabV3Plus(in_channels, num_classes, **overrides)

    register_model(f"unet_25d{_context}", display_name=f"U-Net 2.5D ({_context} slices)",
                   family=Family.CONTEXT, pad_multiple=16, input_kind=InputKind.STACK,
                   context=_context,
                   description=f"U-Net fed a slice and its {_context - 1} nearest neighbours "
                               f"as {_context} channels; predicts the middle slice.")(_unet)
    register_model(f"deeplabv3plus_25d{_context}",
                   display_name=f"DeepLabv3+ 2.5D ({_context} slices)", family=Family.CONTEXT,
                   pad_multiple=16, backbone="ResNet-101", input_kind=InputKind.STACK,
                   context=_context,
                   description=f"DeepLabv3+ (ResNet-101) fed a slice and its {_context - 1} "
                               f"nearest neighbours as {_context} channels.")(_deeplab)
