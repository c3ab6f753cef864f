"""The exception tree of langchain-chatgptes.

Every error the package raises derives from :class:`ChatGptEsError`, so a caller can
catch everything at once or pick the concern it can act on::

    ChatGptEsError
    ├── InvalidInputError (also ValueError)   bad messages or arguments: change the call
    ├── UntrustedEndpointError                a page or reply named a place off the site
    │   └── RefusedRedirectError              a chat request was redirected (not followed)
    ├── BlockedError                          anti-bot (Cloudflare) challenge: proxy / impersonate
    ├── NonceError                            the page's nonce could not be used
    │   ├── NonceNotFoundError                the page has no chat box nonce / post id
    │   └── NonceRejectedError                the site refused a freshly fetched nonce
    ├── SiteError                             the site answered with its own error message
    │   └── ConsentRequiredError              the site's "tick the box" (checkbox) message
    ├── RateLimitError                        token limit reached or HTTP 429
    ├── ResponseFormatError                   a reply the package cannot read (or empty)
    │   ├── IncompleteAnswerError             an answer cut before its end (text came first)
    │   └── ResponseTooLargeError             a page, reply or event above the size caps
    ├── HTTPStatusError                       an unexpected HTTP status (e.g. 5xx)
    ├── TransportError                        connection, TLS, proxy or DNS failure
    │   └── RequestTimeoutError (also TimeoutError)
    └── AllSitesFailedError                   every site of a model with several failed

Each is also one of LangChain's own model errors (``langchain_core.exceptions.ModelError``
and its subclasses: ``InvalidInputError`` is a ``ModelInvalidRequestError``, ``RateLimitError``
a ``ModelRateLimitError``, ``TransportError`` a ``ModelConnectionError``...), whose
``is_retryable`` says whether the same call can succeed later: agent middleware such as
``ModelRetryMiddleware`` decides retries from it.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

__all__ = [
    "AllSitesFailedError",
    "BlockedError",
    "ChatGptEsError",
    "ConsentRequiredError",
    "HTTPStatusError",
    "HistoryTrimWarning",
    "IncompleteAnswerError",
    "InvalidInputError",
    "NonceError",
    "NonceNotFoundError",
    "NonceRejectedError",
    "RateLimitError",
    "RefusedRedirectError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "SiteError",
    "TransportError",
    "UntrustedEndpointError",
]


class ChatGptEsError(ModelError):
    """Base class of every error raised by langchain-chatgptes.

    The message says what went wrong on the wire; where the user is addressed (the chat
    model, the doctor) an :attr:`advice` naming what to change may be added to it.

    Attributes:
        status_code: The HTTP status of the reply that caused the error, if any.
        advice: What the caller can do about it, shown after the message (or ``None``).
        is_retryable: Whether the same call may succeed later (LangChain's
            ``ModelError.is_retryable``, read by agent retry middleware).
    """

    is_retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.advice: str | None = None

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} {self.advice}" if self.advice else message


class InvalidInputError(ChatGptEsError, ModelInvalidRequestError, ValueError):
    """The call itself is wrong (messages, content blocks, arguments, settings).

    Attributes:
        setting: The argument or setting at fault, when one is (e.g. ``"impersonate"``).
        site_specific: A rule of this site only (e.g. AI Engine's ``textInputMaxLength``):
            another site may take the same call (a model with several sites moves on).
    """

    def __init__(
        self, message: str, *, setting: str | None = None, site_specific: bool = False
    ) -> None:
        super().__init__(message)
        self.setting = setting
        self.site_specific = site_specific


class UntrustedEndpointError(ChatGptEsError, ModelPermissionDeniedError):
    """A page or a reply named a place outside the site, and nothing was sent there.

    Requests go over ``http``/``https`` only, to the origin of the page the chat box was
    read from (an ``http`` page may be upgraded to ``https`` on the same host) or to a
    host listed in ``allowed_hosts``.

    Attributes:
        url: The refused URL, as the page or reply named it.
        reason: Why it was refused (its scheme, its host, its form).
    """

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class RefusedRedirectError(UntrustedEndpointError):
    """A chat, nonce or session request was answered with a redirect, which is not followed.

    Only the page GET follows redirects (that is how ``base_url`` settles on the site's
    address); nothing is sent to the ``Location``, and the message does not quote the
    redirect's body.

    Attributes:
        url: The redirect's ``Location``, resolved against the request's URL.
    """


class BlockedError(ChatGptEsError, ModelPermissionDeniedError):
    """An anti-bot page (Cloudflare challenge) answered instead of the site."""


class NonceError(ChatGptEsError):
    """The WordPress nonce needed for the chat endpoint could not be used."""


class NonceNotFoundError(NonceError, ModelNotFoundError):
    """The page was fetched but holds no chat bot this package can talk to.

    Attributes:
        page_url: The page that was read.
        missing: What a chat box found on the page lacks (e.g. ``("nonce",)``); empty
            when no chat box was found at all.
        looked_for: What was looked for, in words (one entry per known plugin).
    """

    def __init__(
        self,
        message: str,
        *,
        page_url: str = "",
        missing: tuple[str, ...] = (),
        looked_for: tuple[str, ...] = (),
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.page_url = page_url
        self.missing = missing
        self.looked_for = looked_for


class NonceRejectedError(NonceError, ModelAuthenticationError):
    """The site rejected the nonce, also after fetching a fresh one."""


class SiteError(ChatGptEsError):
    """The site answered with an error message of its own.

    A refusal (banned words, a closed bot) is not retryable; an upstream failure the site
    reports with a 5xx status is (``is_retryable``).

    Attributes:
        site_message: The site's message, verbatim.
        site: The host of the site that answered, once known.
    """

    def __init__(self, site_message: str, *, status_code: int | None = None) -> None:
        super().__init__(
            f"The site answered with an error: {site_message}", status_code=status_code
        )
        self.site_message = site_message
        self.site: str | None = None
        self.is_retryable = status_code is not None and status_code >= 500

    def at(self, site: str) -> None:
        """Name the site (its host) in the message: the protocol that raised it cannot."""
        self.site = site
        self.args = (f"{site} answered with an error: {self.site_message}",)


class ConsentRequiredError(SiteError, ModelPermissionDeniedError):
    """The site asks for its consent checkbox ("Du musst das Kästchen anklicken!")."""


class RateLimitError(ChatGptEsError, ModelRateLimitError):
    """The site's token limit was reached, or it answered HTTP 429.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said so.
    """

    is_retryable = True

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ResponseFormatError(ChatGptEsError, ModelAPIError):
    """The reply could not be read as the plugin's JSON or event stream, or was empty."""

    is_retryable = False  # the site changed or misbehaves: the same call would fail again


class IncompleteAnswerError(ResponseFormatError):
    """An answer was cut before its end (text came first).

    The reply ended before its end marker, the connection broke after part of the answer,
    or the site sent an error after it. Part of the answer may already have reached the
    caller; it is not complete. Asking again may succeed (``is_retryable``); the package
    itself never does, so no part of an answer is delivered twice.

    Attributes:
        site_message: The site's error message, when it sent one.
    """

    def __init__(
        self, message: str, *, site_message: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.site_message = site_message

    is_retryable = True


class ResponseTooLargeError(ResponseFormatError):
    """A page, a reply body or one stream event is larger than the package reads.

    Attributes:
        limit: The cap in bytes that was exceeded.
    """

    def __init__(self, message: str, *, limit: int, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.limit = limit


class HTTPStatusError(ChatGptEsError, ModelAPIError):
    """The site answered with an HTTP status the protocol does not expect.

    Retryable (``is_retryable``) for a 5xx status only.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.is_retryable = status_code is not None and status_code >= 500


class TransportError(ChatGptEsError, ModelConnectionError):
    """The request did not complete: connection, TLS, proxy or DNS failure.

    Attributes:
        at_proxy: The proxy failed (not the site).
        not_http: Something answered, but not in HTTP (another service on that port?).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        at_proxy: bool = False,
        not_http: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.at_proxy = at_proxy
        self.not_http = not_http

    is_retryable = True


class RequestTimeoutError(TransportError, ModelTimeoutError, TimeoutError):
    """A connect, total or idle time limit ran out."""


class AllSitesFailedError(ChatGptEsError, ModelAPIError):
    """Every site of a model with several failed the call (or was cooling down).

    Attributes:
        failures: ``(site, error)`` for each site tried, in the order tried.
        cooling: The sites skipped because they are cooling down after failures.
        is_retryable: Whether any site's error was retryable.
    """

    def __init__(
        self, failures: Sequence[tuple[str, ChatGptEsError]], cooling: Sequence[str] = ()
    ) -> None:
        tried = "; ".join(f"{site}: {type(error).__name__}: {error}" for site, error in failures)
        skipped = f" Cooling down after failures: {', '.join(cooling)}." if cooling else ""
        super().__init__(f"Every site failed. {tried}.{skipped}")
        self.failures = tuple(failures)
        self.cooling = tuple(cooling)
        self.is_retryable = any(error.is_retryable for _, error in failures)


class HistoryTrimWarning(UserWarning):
    """A conversation longer than the site keeps: its oldest turns will not reach the model.

    AI Engine keeps the first message and the last 15 others of what it is sent; a longer
    conversation is sent whole, and this warning says how many turns the site will drop.
    """
