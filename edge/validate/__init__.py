"""Fidelity of each variant against the float32 reference, with task-aware metrics."""
