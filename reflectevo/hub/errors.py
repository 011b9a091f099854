"""Hub errors: one clear line naming the operation, the repo and the revision; never a token."""

from __future__ import annotations

import re

from reflectevo.errors import UserError

_TOKEN_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(bearer\s+)[^\s'\"]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^\s'\"]+"),
    re.compile(r"(?i)([?&](?:sig|token|access_token)=)[^&\s'\"]+"),
)


def scrub(text: str, *secrets: str | None) -> str:
    """Remove the given secrets and anything shaped like a token from ``text``."""
    for secret in secrets:
        if secret and isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class HubError(UserError):
    """A Hub operation failed; the message says what, on which repo and revision, and why."""

    def __init__(self, message: str, *, repo_id: str | None = None, revision: str | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.repo_id = repo_id
        self.revision = revision
        self.status = status


class HubUnavailableError(HubError):
    """The server could not be reached, or the connection broke during the operation."""


class HubAuthError(HubError):
    """401/403: no token, a wrong token, or a token without access to the repo."""


class HubNotFoundError(HubError):
    """404: no such repo, revision or file (or a private repo hidden from this token)."""


class HubConflictError(HubError):
    """409/412: the repo, branch or tag exists already, or the branch moved under the commit."""
