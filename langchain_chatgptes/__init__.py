"""LangChain chat model for free WordPress chat sites (chatgpt.es first): AI Power, AI Engine.

```python
from langchain_chatgptes import ChatChatGptEs

ChatChatGptEs().invoke("Hello")
```
"""

from importlib import metadata
from typing import TYPE_CHECKING, Any

from langchain_chatgptes._sites import SiteHealth
from langchain_chatgptes.chat_models import KNOWN_MODELS, ChatChatGptEs
from langchain_chatgptes.errors import (
    AllSitesFailedError,
    BlockedError,
    ChatGptEsError,
    ConsentRequiredError,
    HistoryTrimWarning,
    HTTPStatusError,
    IncompleteAnswerError,
    InvalidInputError,
    NonceError,
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
)

if TYPE_CHECKING:
    from langchain_chatgptes._site_cache import SiteCache


def __getattr__(name: str) -> Any:
    # SiteCache imports the protocols: loaded when asked for, not with the package (their
    # import is part of the first call, not of `import langchain_chatgptes`).
    if name == "SiteCache":
        from langchain_chatgptes._site_cache import SiteCache

        return SiteCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = metadata.version("langchain-chatgptes")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "KNOWN_MODELS",
    "AllSitesFailedError",
    "BlockedError",
    "ChatChatGptEs",
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
    "SiteCache",
    "SiteError",
    "SiteHealth",
    "TransportError",
    "UntrustedEndpointError",
    "__version__",
]
