"""Logging set-up for the CLI: our own debug output on -v, never third-party wire dumps, never secrets.

botocore's DEBUG output includes request headers (session tokens, signatures), so -v raises only the
``pipeline`` logger. A redacting filter on the handler is the second line of defence: any known secret
value from the environment is replaced before a record is written, whoever logged it.
"""

from __future__ import annotations

import logging
import os
import sys

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str) -> None:
        # Short values would redact innocent text and protect nothing.
        if secret and len(secret) >= 6 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, "***")
        return True


_REDACT = RedactSecrets([])


class _AroundBars(logging.StreamHandler):
    """Writes a log line through tqdm while a progress bar is on screen, so the line does not land on the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from pipeline.ops import progress

        if not progress.showing():
            super().emit(record)
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def redact(text: str) -> str:
    """``text`` with every protected secret replaced: for text that leaves the process other than by logging
    (the run history's error, the ``--json`` summary)."""
    for secret in _REDACT.secrets:
        text = text.replace(secret, "***")
    return text


def protect_env(name: str) -> None:
    """Redact the value of environment variable ``name`` from everything logged from now on."""
    _REDACT.add(os.environ.get(name, ""))


def setup(verbose: bool, quiet: bool) -> None:
    for name in SECRET_ENV:
        protect_env(name)
    handler = _AroundBars(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_REDACT)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("pipeline").setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    from pipeline.ops import progress

    progress.configure(quiet)
