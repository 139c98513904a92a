"""Scoring models on labelled data (:mod:`.scoring` for image folders, :mod:`.videos` for video folders, per frame
and per clip) and the reports and plots made from the scores (:mod:`.reports`, :mod:`.plots`)."""
