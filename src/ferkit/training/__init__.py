"""Training (needs the ``train`` extra: torch): run configs (:mod:`.config`), data sources and splits
(:mod:`.sources`, :mod:`.samples`, :mod:`.duplicates`, :mod:`.weak`, :mod:`.data`), augmentation, losses, backbones,
the loop (:mod:`.loop`), checkpoints, experiment tracking, distillation and ONNX export."""
