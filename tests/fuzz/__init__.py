"""Fuzz suite: hostile inputs for every ferkit command (see registry.py)."""
