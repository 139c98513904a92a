"""Knowledge distillation: a trained teacher's softened predictions as extra targets for the student.

Used by ``ferkit train`` when the config has ``[distill] teacher = ".../best.pt"``. The teacher can average its
logits over test-time views (``views = "flip"``: the image and its mirror; ``"flip_shift"``: also four small
shifts, each mirrored — ten views), so a student of the same size learns what test-time augmentation adds without
paying for extra forward passes at inference. Online, the teacher scores every augmented batch; ``offline = true``
scores each unaugmented train image once at the start (ten-view teachers then cost one pass over the data instead of
ten forward passes per step). Needs the ``train`` extra (torch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ferkit.errors import InputError
from ferkit.models.base import tta_plan
from ferkit.training.checkpoints import BEST_KEYS, load_checkpoint
from ferkit.training.config import RunConfig
from ferkit.training.export import model_from_checkpoint


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. (2015): ``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, batch mean."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="batchmean", log_target=True
    ) * (t * t)


def tta_views(x: torch.Tensor, views: str, shift: int = 2) -> list[torch.Tensor]:
    """Test-time views of an NCHW batch, as :func:`ferkit.models.base.tta_plan` lists them (``none``, ``flip`` or
    ``flip_shift``)."""
    out = []
    for dy, dx, mirrored in tta_plan(views, shift):
        v = torch.roll(x, (dy, dx), (2, 3)) if dy or dx else x
        out.append(v.flip(3) if mirrored else v)
    return out


class Teacher:
    """A frozen network from a run checkpoint that scores the student's (already normalised) input batches."""

    def __init__(self, cfg: RunConfig, classes: list[str], device: str) -> None:
        path = Path(cfg.distill.teacher or "")
        if not path.is_file():
            raise InputError(f"distill.teacher: {path} not found (give a run's best.pt)")
        try:
            self.model, spec = model_from_checkpoint(load_checkpoint(path, BEST_KEYS), path)
        except InputError as exc:
            raise InputError(f"distill.teacher: {exc}") from None
        d = cfg.data
        want = {"classes": classes, "input_size": d.input_size, "channels": d.channels, "mean": d.mean, "std": d.std}
        diff = [f"{k} {spec[k]!r} ≠ {v!r}" for k, v in want.items() if spec[k] != v]
        if diff:
            raise InputError(f"distill.teacher: {path} does not match this run: " + "; ".join(diff))
        self.model.to(device, memory_format=torch.channels_last).requires_grad_(False)
        self.views, self.shift, self.device = cfg.distill.views, cfg.distill.shift, device

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher logits for a normalised NCHW batch, averaged over the configured views."""
        views = tta_views(x, self.views, self.shift)
        return torch.stack([self.model(v)[0].float() for v in views]).mean(0)

    def table(
        self, x: torch.Tensor, normalise: Callable[[torch.Tensor], torch.Tensor], batch: int = 512
    ) -> torch.Tensor:
        """Offline targets: teacher logits of every image of a uint8 NCHW tensor (on the CPU, in order)."""
        out = [
            self.logits(normalise(x[i : i + batch].to(self.device)).contiguous(memory_format=torch.channels_last))
            for i in range(0, len(x), batch)
        ]
        return torch.cat(out).cpu()
