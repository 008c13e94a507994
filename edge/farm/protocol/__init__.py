"""The measurement protocol and its statistics: the protocol and `summarize` (`protocol`, with
the rules of `edge.stopping`), competing load (`load`) and the run's noise (`noise`).
"""
