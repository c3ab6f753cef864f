"""Every public error is also LangChain's own ``ModelError``, with a correct ``is_retryable``.

Agent middleware (``ModelRetryMiddleware``) retries every exception that is not a
``ModelError``, and a ``ModelError`` only when ``is_retryable``: the table below is the
contract, and the error table of docs/errors.md says the same.
"""

from __future__ import annotations

import pytest
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

from langchain_chatgptes import (
    AllSitesFailedError,
    BlockedError,
    ChatGptEsError,
    ConsentRequiredError,
    HTTPStatusError,
    IncompleteAnswerError,
    InvalidInputError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    RefusedRedirectError,
    RequestTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    SiteError,
    TransportError,
    UntrustedEndpointError,
    errors,
)

TABLE: list[tuple[ChatGptEsError, type[ModelError], bool]] = [
    (InvalidInputError("bad"), ModelInvalidRequestError, False),
    (UntrustedEndpointError("x", url="file:///", reason="r"), ModelPermissionDeniedError, False),
    (RefusedRedirectError("x", url="http://a/", reason="r"), ModelPermissionDeniedError, False),
    (BlockedError("challenge"), ModelPermissionDeniedError, False),
    (NonceNotFoundError("no bot"), ModelNotFoundError, False),
    (NonceRejectedError("refused"), ModelAuthenticationError, False),
    (SiteError("banned word"), ModelError, False),
    (SiteError("upstream down", status_code=500), ModelError, True),
    (ConsentRequiredError("tick the box"), ModelPermissionDeniedError, False),
    (RateLimitError("429", status_code=429), ModelRateLimitError, True),
    (RateLimitError("token limit"), ModelRateLimitError, True),
    (ResponseFormatError("html"), ModelAPIError, False),
    (IncompleteAnswerError("cut"), ModelAPIError, True),
    (ResponseTooLargeError("big", limit=1), ModelAPIError, False),
    (HTTPStatusError("500", status_code=500), ModelAPIError, True),
    (HTTPStatusError("503", status_code=503), ModelAPIError, True),
    (HTTPStatusError("404", status_code=404), ModelAPIError, False),
    (HTTPStatusError("400 '0'", status_code=400), ModelAPIError, False),
    (TransportError("reset"), ModelConnectionError, True),
    (TransportError("proxy down", at_proxy=True), ModelConnectionError, True),
    (RequestTimeoutError("slow"), ModelTimeoutError, True),
    (AllSitesFailedError([("https://a", TransportError("x"))]), ModelAPIError, True),
    (AllSitesFailedError([("https://a", BlockedError("x"))]), ModelAPIError, False),
]


@pytest.mark.parametrize(
    ("error", "model_error", "retryable"), TABLE, ids=[type(e).__name__ for e, _, _ in TABLE]
)
def test_each_error_is_a_model_error(
    error: ChatGptEsError, model_error: type[ModelError], retryable: bool
) -> None:
    assert isinstance(error, model_error)
    assert error.is_retryable is retryable


def test_every_public_error_is_in_the_table() -> None:
    public = {
        getattr(errors, name)
        for name in errors.__all__
        if issubclass(getattr(errors, name), ChatGptEsError)
    }
    assert public == {type(error) for error, _, _ in TABLE} | {ChatGptEsError, errors.NonceError}


def test_the_old_bases_still_hold() -> None:
    # `except ValueError`, `except TimeoutError` and the package's own tree keep working.
    assert isinstance(InvalidInputError("x"), ValueError)
    assert isinstance(RequestTimeoutError("x"), TimeoutError)
    assert isinstance(RequestTimeoutError("x"), TransportError)
    assert isinstance(RequestTimeoutError("x"), ModelConnectionError)
    assert isinstance(IncompleteAnswerError("x"), ResponseFormatError)
    assert isinstance(RefusedRedirectError("x", url="u", reason="r"), UntrustedEndpointError)


def test_the_docs_table_says_the_same() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "errors.md").read_text()
    for error, model_error, retryable in TABLE:
        if type(error) in (HTTPStatusError, SiteError, AllSitesFailedError):
            continue  # rows whose answer depends on the instance
        row = next(
            (
                line
                for line in readme.splitlines()
                if line.startswith(f"| `{type(error).__name__}`")
            ),
            None,
        )
        assert row is not None, f"no docs/errors.md row for {type(error).__name__}"
        assert f"`{model_error.__name__}`" in row
        assert ("| yes |" if retryable else "| no |") in row


def test_the_docs_say_5xx_only_where_it_depends_on_the_status() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "errors.md").read_text()
    for name in ("HTTPStatusError", "SiteError"):
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{name}`")]
        assert "| 5xx only |" in row


def test_the_docs_say_when_every_site_failing_is_retryable() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "errors.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `AllSitesFailedError`")]
    assert "| `ModelAPIError` | if one site's error is |" in row
