"""What the clients raise: one family per outside service, rooted at UpstreamError.

An error says what the service did (its HTTP status, its own error code, its words, how long
it asks us to wait) and nothing of how this server answers its own callers: the integration
decides that, in one table (sfdcflex/errors.py). Nothing here imports the runtime.
"""
from __future__ import annotations


class UpstreamError(Exception):
    """A call to an outside service failed, was refused, or could not be made.

    `status` is the service's HTTP status (None when there was no answer), `error_code` its
    own code (Salesforce's errorCode, Twilio's numeric code), `retry_after` the seconds a
    caller should wait before trying again, when that is known.
    """

    def __init__(self, message: str, *, status: int | None = None, error_code: str | int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.retry_after = retry_after


class Unreachable(UpstreamError):
    """No usable answer came back: the connection failed, timed out, or the answer was too large."""


class NotJson(UpstreamError):
    """The service answered a body that is not JSON (an HTML error page, a captive portal)."""


class UrlRefused(ValueError):
    """A service's base URL is refused before any call: not https (nor http on this machine),
    or carrying a user, query or fragment. `setting` names the setting it came from."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


# --- Salesforce ---------------------------------------------------------------------------------

class SalesforceError(UpstreamError):
    """Salesforce failed or answered an error; the message carries its errorCode and words."""


class SessionExpired(SalesforceError):
    """The access token expired or was revoked (401 INVALID_SESSION_ID): refresh once, then retry."""


class InvalidGrant(SalesforceError):
    """The refresh token was refused (invalid_grant): the grant is dead and the user must consent again."""


class CodeRefused(SalesforceError):
    """The authorization code was refused (invalid_grant on the code exchange): used or expired."""


class RequestLimitExceeded(SalesforceError):
    """The org used up its daily API request allowance (403 REQUEST_LIMIT_EXCEEDED)."""


class RecordRejected(SalesforceError):
    """Salesforce refused the record's data: a validation rule, a required field, a bad value."""


class RecordNotFound(SalesforceError):
    """The record, or one a write points to, does not exist or was deleted."""


class InsufficientAccess(SalesforceError):
    """The agent's Salesforce user may not do this (object permission, sharing, read-only record)."""


# --- Twilio IAM ---------------------------------------------------------------------------------

class IamError(UpstreamError):
    """A Flex token could not be checked, or was refused."""


class TokenMissing(IamError):
    """There is no Flex token to check (IAM is not asked)."""


class TokenRefused(IamError):
    """The Flex token is not valid: IAM said so, or it is too long to be one."""


class IamBusy(IamError):
    """Too many token checks are under way at once; `retry_after` says when to try again."""


class IamUnavailable(IamError):
    """IAM failed, did not answer in time, or answered something that is not a token check."""


class IamCredentialsRefused(IamError):
    """IAM refused this server's own account SID or auth token, so no token can be checked."""


# --- Twilio Sync --------------------------------------------------------------------------------

class SyncError(UpstreamError):
    """Twilio Sync refused a call; the message carries Twilio's error code and message."""


class SyncUnavailable(SyncError):
    """Twilio Sync could not be reached, or kept failing (429, 5xx) through every retry."""


class SyncCredentialsRefused(SyncError):
    """Twilio Sync refused this server's own account SID or auth token (401)."""


class DocumentExists(SyncError):
    """A document with this unique name already exists (409 / 54301)."""


class RevisionMismatch(SyncError):
    """The document changed since the revision given in If-Match (412 / 54103)."""


class DocumentNotFound(SyncError):
    """The document to update does not exist (404 / 20404)."""


class MapItemExists(SyncError):
    """A Map already holds an item with this key (409 / 54208)."""
