"""The curation flywheel: mine hard faces from video into a queue (:mod:`.mine`, :mod:`.queue`), summarise it
(:mod:`.stats`), label it in a browser (:mod:`.server`), export a dataset (:mod:`.export`) and relabel folders by
rules (:mod:`.relabel`). Sits above :mod:`ferkit.api` and below the CLI."""
