"""The curation flywheel: mine hard faces from video into a queue (:mod:`.mine`, :mod:`.queue`), summarise it
(:mod:`.stats`), label it in a browser (:mod:`.server`, :mod:`.labelling`), export a dataset (:mod:`.export`) and
relabel folders by rules (:mod:`.relabel`); and synthetic speech-action composites (:mod:`.speech_action`,
:mod:`.donors`, :mod:`.composite`). Sits above :mod:`ferkit.api` and below the CLI; never imports training code."""
