"""The analysis path: frames → faces → predictions → records (:mod:`.pipeline`), with temporal smoothing
(:mod:`.smoothing`), record formats and resume (:mod:`.records`), channel fusion (:mod:`.channels`) and plots
(:mod:`.plots`). Never imports torch, mlflow or ``ferkit.training``."""
