"""The matrix and the run over it: the matrix file and its cells (`matrix`), and which cells run
in what order, host first, calibration per device (`run`).
"""
