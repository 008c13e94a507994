"""edge: build, validate, measure and pick vision-model variants for phones."""

__version__ = "0.1.0"
