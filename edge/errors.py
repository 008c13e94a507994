"""Typed errors. An `EdgeError` is a user's mistake or an unmet condition: the CLI prints its
message and exits non-zero without a traceback."""

from __future__ import annotations


class EdgeError(Exception):
    """An error whose message is meant for the user."""


class SpecError(EdgeError):
    """Unknown model, unknown or invalid parameter, impossible combination."""


class ModelFileError(EdgeError):
    """A user's model file is missing, corrupt or of an unknown kind."""


class ConversionError(EdgeError):
    """A converter failed; the message names the model and the variant."""


class ValidationError(EdgeError):
    """One or more variants failed their fidelity checks. Carries every failure, not the first."""

    def __init__(self, failures: list[str]):
        self.failures = list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(f"{len(self.failures)} variant(s) failed fidelity:\n{lines}")


class EvalDataError(EdgeError):
    """A labelled data folder (`--eval-data`) is missing, laid out wrongly or has a bad file;
    the message names the file."""


class WeightsError(EdgeError):
    """A published weight file is missing, not the pinned file (sha256) or unreadable; the
    message names the package and the file."""


class UnsafePickleError(WeightsError):
    """A weight file's pickle asks for a global other than the tensor rebuilders; nothing of it
    runs. The message names the global."""
