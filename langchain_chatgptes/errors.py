"""The exception tree of langchain-chatgptes.

Every error the package raises derives from :class:`ChatGptEsError`, so a caller can
catch everything at once or pick the concern it can act on::

    ChatGptEsError
    ├── InvalidInputError (also ValueError)   bad messages or arguments: change the call
    ├── BlockedError                          anti-bot (Cloudflare) challenge: proxy / impersonate
    ├── NonceError                            the page's nonce could not be used
    │   ├── NonceNotFoundError                the page has no chat box nonce / post id
    │   └── NonceRejectedError                the site refused a freshly fetched nonce
    ├── SiteError                             the site answered with its own error message
    │   └── ConsentRequiredError              the site's "tick the box" (checkbox) message
    ├── RateLimitError                        token limit reached or HTTP 429
    ├── ResponseFormatError                   a reply the package cannot read (or empty)
    ├── HTTPStatusError                       an unexpected HTTP status (e.g. 5xx)
    └── TransportError                        connection, TLS, proxy or DNS failure
        └── RequestTimeoutError (also TimeoutError)
"""

from __future__ import annotations

__all__ = [
    "BlockedError",
    "ChatGptEsError",
    "ConsentRequiredError",
    "HTTPStatusError",
    "InvalidInputError",
    "NonceError",
    "NonceNotFoundError",
    "NonceRejectedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "SiteError",
    "TransportError",
]


class ChatGptEsError(Exception):
    """Base class of every error raised by langchain-chatgptes.

    Attributes:
        status_code: The HTTP status of the reply that caused the error, if any.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class InvalidInputError(ChatGptEsError, ValueError):
    """The call itself is wrong (messages, content blocks, arguments)."""


class BlockedError(ChatGptEsError):
    """An anti-bot page (Cloudflare challenge) answered instead of the site."""


class NonceError(ChatGptEsError):
    """The WordPress nonce needed for the chat endpoint could not be used."""


class NonceNotFoundError(NonceError):
    """The page was fetched but holds no chat box nonce or post id (page changed?)."""


class NonceRejectedError(NonceError):
    """The site rejected the nonce, also after fetching a fresh one."""


class SiteError(ChatGptEsError):
    """The site answered with an error message of its own.

    Attributes:
        site_message: The site's message, verbatim.
    """

    def __init__(self, site_message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"chatgpt.es returned an error: {site_message}", status_code=status_code)
        self.site_message = site_message


class ConsentRequiredError(SiteError):
    """The site asks for its consent checkbox ("Du musst das Kästchen anklicken!")."""


class RateLimitError(ChatGptEsError):
    """The site's token limit was reached, or it answered HTTP 429.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said so.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ResponseFormatError(ChatGptEsError):
    """The reply could not be read as the plugin's JSON or event stream, or was empty."""


class HTTPStatusError(ChatGptEsError):
    """The site answered with an HTTP status the protocol does not expect."""


class TransportError(ChatGptEsError):
    """The request did not complete: connection, TLS, proxy or DNS failure."""


class RequestTimeoutError(TransportError, TimeoutError):
    """A connect, total or idle time limit ran out."""
