"""Load any CLIP (Hugging Face, open_clip, `finetune` checkpoints) behind one interface."""

from evalsuite.models.base import ClipModel, ModelSource, PreprocessConfig
from evalsuite.models.factory import load_model, load_scorable
from evalsuite.models.precomputed import PrecomputedEmbeddings, load_embeddings

__all__ = [
    "ClipModel",
    "ModelSource",
    "PrecomputedEmbeddings",
    "PreprocessConfig",
    "load_embeddings",
    "load_model",
    "load_scorable",
]
