"""Measurement farm: the protocol shared by the browser harness and the TFLite runner."""
