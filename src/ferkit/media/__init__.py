"""Inputs: still images at their true orientation (:mod:`.images`), streaming video decode sampled at a fixed rate
(:mod:`.video`) and the bundled demo sample (:mod:`.samples`). The bottom layer: imports nothing else of ferkit but
``ferkit.errors``."""
