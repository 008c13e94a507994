"""Variant builders (TFLite, TF.js), the content-addressed artifact cache and build manifests."""
