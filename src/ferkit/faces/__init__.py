"""Faces in frames: detectors behind a registry (:mod:`.detectors`; YuNet, the default, in :mod:`.yunet`),
alignment to the models' crop (:mod:`.align`) and tracking across video frames (:mod:`.tracking`)."""

from ferkit.faces import detectors, yunet  # noqa: F401  (yunet registers itself in the detectors' registry)
