"""Measuring: subpackages by the axes a measurement varies along.

`scheduling` (which cells, in what order), `runners` (where a cell runs: the local browser, a
remote endpoint, the native worker), `emulation` (how a phone is emulated: catalog, CPU
bandwidth control, calibration), `protocol` (when to stop, the statistics, competing load, the
run's noise); `cells` is the per-cell bench context they share and `doctor` checks the host.
"""
