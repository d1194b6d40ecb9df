"""The integration's errors, and the one table that says how an agent is answered when a client fails.

The generic HTTP errors (400, 403, 404, 502, ...) live in `sfdcflex.runtime.errors`; NotLinked
subclasses one, so the runtime renders it like any other. The clients raise their own families
(`sfdcflex.clients.errors`), which know nothing of this server's answers: ANSWERS gives each its
status and error code, and `answer_for` is the one place that applies it.
"""
from __future__ import annotations

from .clients.errors import (CodeRefused, IamBusy, IamCredentialsRefused, IamError,
                             InsufficientAccess, InvalidGrant, RecordNotFound, RecordRejected,
                             RequestLimitExceeded, SalesforceError, SessionExpired, SyncError,
                             SyncUnavailable, TokenMissing, TokenRefused, UpstreamError)
from .runtime.errors import (BadGateway, BadRequest, Forbidden, HTTPError, NotFound, ServiceUnavailable,
                             UnprocessableContent)


class NotLinked(NotFound):
    """The agent has no (working) Salesforce link: they must connect again."""

    code = "not_linked"


# A client's error -> the HTTP error an agent gets, and its code. A class not listed takes its
# nearest listed base's answer (RevisionMismatch is a SyncError: 502 sync_error).
ANSWERS: dict[type[UpstreamError], tuple[type[HTTPError], str]] = {
    UpstreamError: (BadGateway, "upstream_error"),
    # Salesforce works but refuses what this agent asked: the agent (or an admin) can act on it.
    InvalidGrant: (NotLinked, "not_linked"),          # the same answer as a link that is gone
    CodeRefused: (BadRequest, "invalid_code"),
    RecordRejected: (UnprocessableContent, "salesforce_rejected"),  # the org's own rules refuse it
    RecordNotFound: (NotFound, "salesforce_record_not_found"),
    InsufficientAccess: (Forbidden, "salesforce_insufficient_access"),  # not 502: an admin must grant it
    # Salesforce failing, or refusing a session the keeper could not refresh: 502.
    SalesforceError: (BadGateway, "salesforce_error"),
    SessionExpired: (BadGateway, "salesforce_session_expired"),
    RequestLimitExceeded: (BadGateway, "salesforce_request_limit"),
    # The Flex token.
    TokenMissing: (BadRequest, "missing_token"),
    TokenRefused: (Forbidden, "invalid_token"),
    IamBusy: (ServiceUnavailable, "iam_busy"),
    IamError: (BadGateway, "iam_unavailable"),        # IamUnavailable, and a kind added later
    IamCredentialsRefused: (BadGateway, "iam_credentials_rejected"),
    # The Sync token store.
    SyncError: (BadGateway, "sync_error"),
    SyncUnavailable: (BadGateway, "sync_unavailable"),
}


def answer_for(error: HTTPError | UpstreamError) -> HTTPError:
    """The HTTP error to answer with: an HTTPError is its own answer; a client's is looked up in ANSWERS.

    The client's words are the message; its retry hint becomes Retry-After.
    """
    if isinstance(error, HTTPError):
        return error
    answer, code = next(ANSWERS[kind] for kind in type(error).__mro__ if kind in ANSWERS)
    headers = {"Retry-After": f"{error.retry_after:g}"} if error.retry_after is not None else None
    return answer(error.message, code=code, headers=headers)


def answer_for_failure(error: BaseException) -> HTTPError | None:
    """The runtime's `errors` hook (App(errors=...)): a client's error that a function let escape
    gets its answer from ANSWERS; anything else is left to the runtime (a 500, logged)."""
    return answer_for(error) if isinstance(error, UpstreamError) else None


# What a handler catches to answer: its own HTTP errors and every client's.
ANSWERABLE = (HTTPError, UpstreamError)
