"""Faces in frames: detectors behind a registry (:mod:`.detectors`), alignment to the models' crop
(:mod:`.align`) and tracking across video frames (:mod:`.tracking`)."""
