"""LangChain chat model for chatgpt.es (the AI Power / wpaicg WordPress chat plugin).

```python
from langchain_chatgptes import ChatChatGptEs

ChatChatGptEs().invoke("Hello")
```
"""

from importlib import metadata

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
    "SiteError",
    "TransportError",
    "UntrustedEndpointError",
    "__version__",
]
