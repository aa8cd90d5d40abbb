"""Load any CLIP (Hugging Face, open_clip, `finetune` checkpoints) behind one interface."""

from evalsuite.models.base import ClipModel, ModelSource, PreprocessConfig
from evalsuite.models.factory import load_model

__all__ = ["ClipModel", "ModelSource", "PreprocessConfig", "load_model"]
