"""Errors the platform raises on bad input or unreachable services.

The CLI turns any :class:`CreditRiskError` into a one-line reason and a non-zero exit.
"""


class CreditRiskError(Exception):
    """Base class: a failure with a message fit to show an operator on one line."""


class InputError(CreditRiskError):
    """Bad input: a missing or malformed file, a bad date, an invalid argument."""


class IncompleteBuildError(CreditRiskError):
    """A chunked build's stage is not one whole date (a chunk missing or stale): the
    date is not published, the previous version of it stays."""


class ServiceUnavailableError(CreditRiskError):
    """A service the command needs (database, MLflow) cannot be reached."""


class ArtifactIntegrityError(CreditRiskError):
    """A registered model's artifact is not what the trainer recorded: refused, never loaded."""
