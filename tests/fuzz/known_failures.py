"""Fuzz cases whose root cause is not fixed yet: case id → ``"<root cause id>: <one line why>"``.

The suite turns each into a strict xfail (see ``conftest.pytest_collection_modifyitems``): it must still fail, and a
listed case that starts passing fails the suite until its line here is removed. Root cause ids are the anchors of
``FAILURES.md``; ``docs/reliability.md`` says which of them wait for a change in files owned elsewhere (Handoff).
"""

from __future__ import annotations

KNOWN_FAILURES: dict[str, str] = {}

#: Hypothesis property tests (by pytest item name) that are known to fail.
KNOWN_PROPERTY_FAILURES: dict[str, str] = {}
