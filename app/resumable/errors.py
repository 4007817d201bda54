"""What a resume or a stop can fail with; the HTTP side maps each to a status (app/http/errors.py)."""


class StreamNotFound(Exception):
    """No answer under that id: never one, expired, or (for a stop) none in flight."""


class ResumeUnavailable(Exception):
    """The store of resumable answers (Redis) cannot be reached now."""
