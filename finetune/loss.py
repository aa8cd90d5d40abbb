"""Features and training objectives, built on open_clip's :class:`open_clip.loss.ClipLoss`
and :class:`open_clip.loss.SigLipLoss`.

``DualEncoder`` turns a batch into normalised image / caption / hard-negative features,
``exp(logit_scale)`` and, for the sigmoid objective, the logit bias; ``splice`` puts one
micro-batch's live features into the cached features of a whole accumulation step (the
negatives pool).

``ContrastiveLoss`` is ClipLoss with ``local_loss=True, gather_with_grad=True`` (each process
scores its own rows against the features of every process; averaging the gradients over
processes then gives the gradient of the global batch loss), plus two options:

* same-label masking: logits of pairs (i, j != i) whose target labels match are set to -inf
  in both directions, so an item is never pushed away from another item of its own class;
  positives are kept. Label -1 (no value) matches nothing.
* hard negatives: extra caption features (the target attribute swapped) appended as
  columns of the image->text logits only; gathered from every process like the captions.

``SigmoidLoss`` is SigLipLoss (SigLIP's pairwise loss, ``-log sigmoid(+-(t * cos + b))`` summed
over every image x caption pair, divided by the number of images) with the same two options:
same-label pairs get a logit of -inf, so as negatives they add exactly 0 (no value, no
gradient); hard negatives are extra negative pairs of each image. Processes exchange the
captions with ``dist_impl="gather"`` (an all-gather with a backward, like ContrastiveLoss:
it works on gloo and NCCL, and the masking needs every process's labels anyway).

``ZeroShotCELoss`` is the classification fine-tuning of FusionBench: cross-entropy of the
image features against the frozen, normalised class-prompt embeddings of the target field,
at the base model's logit scale, kept fixed (the text tower and the scale are frozen: the
class head is the base model's own zero-shot head, and a learned temperature alone would
only sharpen or flatten it).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.distributed.nn  # all_gather with a backward
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss
from torch import nn

from evalsuite.models.base import ClipModel

# torch.distributed.nn.all_gather (used by open_clip) warns on every call in torch >= 2.9.
warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*", category=FutureWarning)


# --- features -------------------------------------------------------------------------------


STEP_SCALARS = ("scale", "bias")  # one value for the whole step, not one per item


class DualEncoder(nn.Module):
    """What ``accelerator.prepare`` wraps: one forward for both towers (so DDP sees every
    call), returning normalised float32 features, ``exp(logit_scale)`` and, ``with_bias``
    (the sigmoid objective), the logit bias as a 0-d tensor."""

    def __init__(self, clip: ClipModel, with_text: bool, with_bias: bool = False) -> None:
        super().__init__()
        self.module, self.clip, self.with_text = clip.module, clip, with_text
        self.with_bias = with_bias
        if with_bias and clip.logit_bias_parameter is None:
            raise ValueError(f"{clip.name} has no logit bias")

    def forward(self, pixel_values, input_ids=None, negative_ids=None) -> dict[str, torch.Tensor]:
        out = {
            "image": F.normalize(self.clip.image_features(pixel_values).float(), dim=-1),
            "scale": self.clip.logit_scale_parameter.exp().float(),
        }
        if self.with_bias:  # Hugging Face keeps it as shape (1,), open_clip as a 0-d tensor
            out["bias"] = self.clip.logit_bias_parameter.float().reshape(())
        if self.with_text:  # captions and hard negatives in one pass through the text tower
            ids = input_ids if negative_ids is None else torch.cat([input_ids, negative_ids])
            text = F.normalize(self.clip.text_features(ids).float(), dim=-1)
            out["text"] = text[: len(input_ids)]
            if negative_ids is not None:
                out["negatives"] = text[len(input_ids) :]
        return out


def splice(
    cached: list[dict[str, torch.Tensor]], live: dict[str, torch.Tensor], j: int, scale_grad: bool
) -> dict[str, torch.Tensor]:
    """The step's features with micro-batch ``j``'s cached ones replaced by the live ones.
    The scale and bias keep their gradient only where ``scale_grad`` (the step's last pass):
    every pass computes the whole step's loss, whose gradient they must get once."""
    out = {
        key: torch.cat([c[key] for c in cached[:j]] + [value] + [c[key] for c in cached[j + 1 :]])
        for key, value in live.items()
        if key not in STEP_SCALARS
    }
    for key in STEP_SCALARS:
        if key in live:
            out[key] = live[key] if scale_grad else live[key].detach()
    return out


# --- objectives ----------------------------------------------------------------------------


def all_gather(tensor: torch.Tensor, world_size: int, with_grad: bool) -> torch.Tensor:
    """Concatenate ``tensor`` of every process along dim 0 (rank order)."""
    if world_size == 1:
        return tensor
    if with_grad:
        return torch.cat(torch.distributed.nn.all_gather(tensor), dim=0)
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def same_label_mask(
    labels: torch.Tensor, all_labels: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """(local, global) bool: True where the labels match, off the positive, and are known."""
    mask = (labels[:, None] == all_labels[None, :]) & (labels[:, None] >= 0)
    mask[torch.arange(len(labels), device=labels.device), targets] = False
    return mask


class ContrastiveLoss(ClipLoss):
    """Symmetric InfoNCE (open_clip's ClipLoss) with same-label masking and hard negatives."""

    def __init__(self, rank: int = 0, world_size: int = 1, same_label_masking: bool = False):
        super().__init__(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)
        self.same_label_masking = same_label_masking

    def logits(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor | None = None,
        negative_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits_per_image (B, N [+ N*k]), logits_per_text (B, N), targets (B,))."""
        per_image, per_text = self.get_logits(image_features, text_features, logit_scale)
        targets = self.get_ground_truth(image_features.device, image_features.shape[0])
        if self.same_label_masking and labels is not None:
            all_labels = all_gather(labels, self.world_size, with_grad=False)
            mask = same_label_mask(labels, all_labels, targets)
            per_image = per_image.masked_fill(mask, float("-inf"))
            per_text = per_text.masked_fill(mask, float("-inf"))
        if negative_features is not None:
            negatives = all_gather(negative_features, self.world_size, with_grad=True)
            per_image = torch.cat([per_image, logit_scale * image_features @ negatives.T], dim=1)
        return per_image, per_text, targets

    def forward(  # type: ignore[override]
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor | None = None,
        negative_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        per_image, per_text, targets = self.logits(
            image_features, text_features, logit_scale, labels, negative_features
        )
        return (F.cross_entropy(per_image, targets) + F.cross_entropy(per_text, targets)) / 2


class SigmoidLoss(SigLipLoss):
    """SigLIP's sigmoid loss (open_clip's SigLipLoss) with same-label masking and hard
    negatives. Without either it is SigLipLoss itself; each process's loss is that of its own
    images against every process's captions, so the mean over processes (DDP averages the
    gradients) is the loss of the global batch."""

    def __init__(
        self,
        rank: int = 0,
        world_size: int = 1,
        same_label_masking: bool = False,
        dist_impl: str = "gather",
    ) -> None:
        super().__init__(rank=rank, world_size=world_size, dist_impl=dist_impl)
        self.same_label_masking = same_label_masking

    def _loss(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None = None,
        negative_only: bool = False,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SigLipLoss's loss of one square block of pairs; ``drop`` (bool, like the logits):
        negative pairs left out. A logit of -inf makes a negative's term -log sigmoid(inf) = 0
        and masked_fill passes no gradient to it."""
        if drop is None:
            return super()._loss(
                image_features, text_features, logit_scale, logit_bias, negative_only
            )
        logits = self.get_logits(image_features, text_features, logit_scale, logit_bias)
        logits = logits.masked_fill(drop, float("-inf"))
        n = image_features.shape[0]
        labels = self.get_ground_truth(image_features.device, logits.dtype, n, negative_only)
        return -F.logsigmoid(labels * logits).sum() / n

    def forward(  # type: ignore[override]
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
        labels: torch.Tensor | None = None,
        negative_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.same_label_masking and labels is not None:
            loss = self.masked(image_features, text_features, logit_scale, logit_bias, labels)
        else:
            loss = super().forward(image_features, text_features, logit_scale, logit_bias)
        if negative_features is not None:  # every process's, as ContrastiveLoss does
            negatives = all_gather(negative_features, self.world_size, with_grad=True)
            n = image_features.shape[0]
            if len(negatives) % n:
                raise ValueError(f"{len(negatives)} hard negatives for {n} images: not k each")
            # k each: k x processes blocks of as many captions as images, square as _loss wants
            for block in negatives.split(n):
                loss = loss + self._loss(
                    image_features, block, logit_scale, logit_bias, negative_only=True
                )
        return loss

    def masked(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """SigLipLoss's "gather" loss with the same-label pairs of each block left out."""
        n = image_features.shape[0]
        texts = all_gather(text_features, self.world_size, with_grad=True).split(n)
        all_labels = all_gather(labels, self.world_size, with_grad=False)
        targets = torch.arange(n, device=labels.device) + n * self.rank
        drops = same_label_mask(labels, all_labels, targets).split(n, dim=1)
        loss = image_features.new_zeros(())
        for i, (text, drop) in enumerate(zip(texts, drops, strict=True)):
            negative_only = i != self.rank
            loss = loss + self._loss(
                image_features, text, logit_scale, logit_bias, negative_only, drop
            )
        return loss


class ZeroShotCELoss(nn.Module):
    """Cross-entropy of image features against fixed class embeddings at a fixed scale."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        self.logit_scale = float(logit_scale)

    def forward(self, image_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.logit_scale * image_features @ self.class_embeddings.T
        return F.cross_entropy(logits, labels)


def class_embeddings(
    model: ClipModel, names: Sequence[str], templates: Sequence[str], chunk: int = 256
) -> torch.Tensor:
    """(C, D): per class, the normalised mean of its normalised prompt embeddings."""
    prompts = [t.replace("{c}", "{}").replace("{}", name) for name in names for t in templates]
    parts = []
    for lo in range(0, len(prompts), chunk):
        ids = model.tokenize(prompts[lo : lo + chunk]).to(model.device)
        parts.append(F.normalize(model.text_features(ids).float(), dim=-1))
    per_prompt = torch.cat(parts).view(len(names), len(templates), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)


def unused_by_image_tower(model: ClipModel) -> list[nn.Parameter]:
    """Parameters an image forward does not reach (text tower, logit scale), found by
    backpropagating one blank image: works for any architecture and with LoRA."""
    params = list(model.module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    size = model.preprocess_config.image_size
    model.image_features(torch.zeros(1, 3, size, size)).float().sum().backward()
    unused = [p for p in params if p.grad is None]
    for p, flag in zip(params, flags, strict=True):
        p.requires_grad_(flag)
        p.grad = None
    return unused


def compute_loss(
    loss: nn.Module, features: dict[str, torch.Tensor], labels: torch.Tensor
) -> torch.Tensor:
    """Apply the objective to the encoder's output dict (see DualEncoder)."""
    if isinstance(loss, ZeroShotCELoss):
        return loss(features["image"], labels)
    if isinstance(loss, SigmoidLoss):
        image, text, negatives = features["image"], features["text"], features.get("negatives")
        return loss(image, text, features["scale"], features["bias"], labels, negatives)
    return loss(
        features["image"], features["text"], features["scale"], labels, features.get("negatives")
    )


# --- validation metrics (pure: tensors in, numbers out) ------------------------------------------


def zero_shot_accuracy(image: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of the nearest class embedding, over the items with a label (>= 0)."""
    known = labels >= 0
    if not known.any():
        return float("nan")
    hits = (image[known] @ classes.T).argmax(dim=1) == labels[known]
    return hits.float().mean().item()


def validation_loss(
    loss: nn.Module,
    image: torch.Tensor,
    text: torch.Tensor,
    labels: torch.Tensor,
    scale: torch.Tensor,
    chunk: int,
    bias: torch.Tensor | None = None,
) -> float:
    """The training objective on the whole val set: zeroshot_ce over the labelled items, or
    the contrastive or sigmoid loss (with the same masking, no hard negatives; the sigmoid
    one at logit bias ``bias``) over consecutive chunks of ``chunk`` items (one optimizer
    step's batch), weighted by chunk size. A last chunk of one item joins the chunk before:
    alone it has no negative (its contrastive loss would be 0)."""
    if isinstance(loss, ZeroShotCELoss):
        keep = labels >= 0
        return loss(image[keep], labels[keep]).item()
    masking = getattr(loss, "same_label_masking", False)
    if isinstance(loss, SigmoidLoss):
        sigmoid = SigmoidLoss(same_label_masking=masking)

        def local(lo: int, hi: int) -> torch.Tensor:
            return sigmoid(image[lo:hi], text[lo:hi], scale, bias, labels[lo:hi])
    else:
        contrastive = ContrastiveLoss(same_label_masking=masking)

        def local(lo: int, hi: int) -> torch.Tensor:
            return contrastive(image[lo:hi], text[lo:hi], scale, labels[lo:hi])

    bounds = [*range(0, len(image), chunk), len(image)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    total = 0.0
    for lo, hi in itertools.pairwise(bounds):
        total += local(lo, hi).item() * (hi - lo)
    return total / max(1, len(image))
