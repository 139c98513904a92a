"""Scoring models on labelled data (:mod:`.scoring`) and the reports and plots made from the scores
(:mod:`.reports`, :mod:`.plots`)."""
