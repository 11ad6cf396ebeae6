"""Rendering: built-in methods, fidelity metrics and the demo dataset."""
