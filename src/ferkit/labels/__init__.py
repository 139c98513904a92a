"""Class names: taxonomies with aliases and label mapping (:mod:`.taxonomy`) and ``<class>/<image>`` folder datasets
(:mod:`.folders`). Used by models, analysis, evaluation and training alike, so it sits just above ``media``."""
