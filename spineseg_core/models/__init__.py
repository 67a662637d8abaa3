"""The twelve models of the study, built by name: ``build_model("transunet")``."""

from spineseg_core.models.base import MultiOutput, SegmentationModel
from spineseg_core.models.registry import (MODEL_NAMES, Family, ModelInfo, build_model, list_models, model_info,
                       register_model)

__all__ = ["MODEL_NAMES", "Family", "ModelInfo", "MultiOutput", "SegmentationModel",
           "build_model", "list_models", "model_info", "register_model"]
