"""The model a request uses."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model asked for, and whether the server's setting chose it (not the request)."""

    name: str
    configured: bool
