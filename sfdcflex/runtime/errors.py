"""HTTP errors as exception classes that carry their status and error code.

Raise one where the problem is found; the runtime turns it into a JSON response
`{"error": code, "message": text}` in one place (see app.App.dispatch).
"""
from __future__ import annotations


class HTTPError(Exception):
    """An error that the runtime answers with `status` and a JSON body."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": self.code, "message": self.message}


class BadRequest(HTTPError):
    status, code = 400, "bad_request"


class Forbidden(HTTPError):
    status, code = 403, "forbidden"


class NotFound(HTTPError):
    status, code = 404, "not_found"


class MethodNotAllowed(HTTPError):
    status, code = 405, "method_not_allowed"


class LengthRequired(HTTPError):
    status, code = 411, "length_required"


class PayloadTooLarge(HTTPError):
    status, code = 413, "payload_too_large"


class URITooLong(HTTPError):
    status, code = 414, "uri_too_long"


class UnsupportedMediaType(HTTPError):
    status, code = 415, "unsupported_media_type"


class UnprocessableContent(HTTPError):
    """Well formed, but what it says is refused (a record a rule of the other side will not take)."""

    status, code = 422, "unprocessable_content"


class TooManyRequests(HTTPError):
    status, code = 429, "too_many_requests"


class HeadersTooLarge(HTTPError):
    status, code = 431, "headers_too_large"


class InternalError(HTTPError):
    status, code = 500, "internal_error"


class BadGateway(HTTPError):
    """An upstream service (Salesforce, Sync, IAM) failed or answered nonsense."""

    status, code = 502, "upstream_error"


class ServiceUnavailable(HTTPError):
    status, code = 503, "server_busy"


class GatewayTimeout(HTTPError):
    status, code = 504, "timeout"


class VersionNotSupported(HTTPError):
    status, code = 505, "http_version_not_supported"


class ConfigError(Exception):
    """Missing or malformed settings; start-up stops and prints each problem on a line of its own."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
