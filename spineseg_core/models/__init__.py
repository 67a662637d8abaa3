"""The models of the study, built by name: ``build_model("transunet")``; the paper's twelve and
the context family (2.5D, 3D)."""

from spineseg_core.models.base import MultiOutput, SegmentationModel, VolumeSegmentationModel
from spineseg_core.models.registry import (
                                          CONTEXT_MODEL_NAMES,
                                          MODEL_NAMES,
                                          Family,
                                          InputKind,
                                          ModelInfo,
                                          build_model,
                                          canonical_name,
                                          list_models,
                                          model_info,
                                          register_model,
)

__all__ = ["CONTEXT_MODEL_NAMES", "MODEL_NAMES", "Family", "InputKind", "ModelInfo", "MultiOutput",
           "SegmentationModel", "VolumeSegmentationModel", "build_model", "canonical_name",
           "list_models",
           "model_info", "register_model"]
