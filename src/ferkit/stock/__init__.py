"""Weak supervision from stock photos: ``pull`` images from the Pexels and Pixabay search APIs (resumable,
deduplicated, with attribution metadata) and ``extract-faces`` from them into face crops plus the tags file and
keyword rules that the ``weak_tags`` training source reads. :mod:`.replay` is a local stand-in for both APIs."""
