"""How a phone is emulated: the device catalog and its target slowdown (`devices`), CPU
bandwidth control (`cgroups`), the method of a run and its DevTools fallback (`methods`), and
calibration with the record's ``emulation`` field (`calibration`).
"""
