"""AI Engine's (Meow Apps) and WordPress REST's names and strings, as their sources have them.

Written here from ``shared/reference/wp-chat-plugins.md`` Part B and checklist C.3 (the section
is named on each), not imported from the client: the emulator is an independent second
writing of the same facts. Details the reference leaves open were read from the plugin's own
source (``jordymeow/ai-engine`` at tag 3.6.2) or WordPress core; those say "source".
"""

from __future__ import annotations

from typing import Any

VERSION = "3.6.2"
"""The AI Engine version the emulator follows (B.5, C.3 "target 3.6.2")."""

# --- page (B.1) -------------------------------------------------------------------------------

PLUGIN_PATH = "/wp-content/plugins/ai-engine"
"""The plugin directory; ``data-system.pluginUrl`` is it without a trailing slash (B.1)."""

SCRIPT_PATH = PLUGIN_PATH + "/app/chatbot.js"
"""The built front end, handle ``mwai_chatbot`` (B.1, C.1 step 6)."""

SCRIPT_ID = "mwai_chatbot-js"
"""``id`` of its ``<script>`` tag (B.1 example)."""

SCRIPT_VERSION = "1752634800"
"""``?ver=``: the file's ``filemtime`` (B.1 example; source ``chatbot.php:33-36``)."""

CONTAINER_CLASS = "mwai-chatbot-container"
"""The shortcode's ``div`` (B.1)."""

SHORTCODE = "mwai_chatbot"
"""``[mwai_chatbot id="default"]`` (B.1)."""

DEFAULT_BOT = "default"
"""The chatbot every unknown ``botId`` falls back to (B.3 body table)."""

CUSTOM_BOT_TTL = 24 * 3600.0
"""Life of the ``mwai_custom_chatbot_{customId}`` transient, seconds (B.1 ``customId`` row)."""

DEFAULT_MAX_LENGTH = 512
"""``textInputMaxLength`` default (B.1 ``data-params``, ``constants/init.php:14``)."""

MAX_MESSAGES = 15
"""``maxMessages`` default: history turns kept after ``messages[0]`` (B.4)."""

DEFAULT_INSTRUCTIONS = "Converse as if you were an AI assistant. Be friendly, creative."
"""The default chatbot's ``instructions``, sent as the ``system`` message (B.4; text from
source ``constants/init.php``)."""

START_SENTENCE = "Hi! How can I help you?"
"""``startSentence`` default (B.1 ``data-params``)."""

THEME = {"type": "internal", "name": "ChatGPT", "themeId": "chatgpt", "settings": [], "style": ""}
"""``data-theme`` of the default ``chatgpt`` theme (B.1, ``classes/core.php:906-937``)."""

FRONT_PARAMS: tuple[tuple[str, Any], ...] = (
    ("aiName", "AI: "),
    ("userName", "User: "),
    ("guestName", "Guest: "),
    ("textSend", "Send"),
    ("textClear", "Clear"),
    ("multiUpload", False),
    ("mode", "chat"),
    ("textInputPlaceholder", "Type your message..."),
    ("textInputMaxLength", DEFAULT_MAX_LENGTH),
    ("textCompliance", ""),
    ("startSentence", START_SENTENCE),
    ("localMemory", True),
    ("themeId", "chatgpt"),
    ("window", False),
    ("icon", ""),
    ("iconText", ""),
    ("iconTextDelay", 1),
    ("iconAlt", "AI Engine Chatbot"),
    ("iconPosition", "bottom-right"),
    ("centerOpen", False),
    ("width", ""),
    ("openDelay", ""),
    ("iconBubble", False),
    ("windowAnimation", "zoom"),
    ("fullscreen", False),
    ("copyButton", False),
    ("pdfButton", False),
    ("headerSubtitle", "Discuss with"),
    ("containerType", "standard"),
    ("headerType", "standard"),
    ("messagesType", "standard"),
    ("inputType", "standard"),
    ("footerType", "standard"),
)
"""``data-params`` of the default chatbot before the upload keys, in
``MWAI_CHATBOT_FRONT_PARAMS`` order (B.1; the values are ``MWAI_CHATBOT_DEFAULT_PARAMS``, source
``constants/init.php``, ``chatbot.php:4``). ``textInputMaxLength`` is replaced by the knob."""

UPLOAD_PARAMS: tuple[tuple[str, Any], ...] = (
    ("fileUpload", False),
    ("imageUpload", False),
    ("fileUploads", 0),
    ("maxUploads", 1),
)
"""The upload keys the shortcode appends, uploads off (B.1; source ``chatbot.php:1221-1232``;
``multiUpload`` keeps its earlier place)."""

# --- REST (B.2, B.3) --------------------------------------------------------------------------

REST_PREFIX = "/wp-json"
"""Pretty permalinks: ``restUrl`` = ``{home}/wp-json`` (B.1 ``restUrl`` row)."""

PLAIN_REST_BASE = "/index.php?rest_route="
"""Plain permalinks: ``restUrl`` = ``{home}/index.php?rest_route=`` (B.1 ``restUrl`` row)."""

SESSION_ROUTE = "/mwai/v1/start_session"
"""Guest nonce and session, >= 2.4.4 (B.2)."""

SUBMIT_ROUTE = "/mwai-ui/v1/chats/submit"
"""The chat endpoint (B.3)."""

NAMESPACES = ("mwai/v1", "mwai-ui/v1")
"""The plugin's REST namespaces (B intro)."""

NONCE_ACTION = "wp_rest"
"""The REST nonce action (B.2, C.3 item 1)."""

NONCE_HEADER = "X-WP-Nonce"
"""Request header read by both checks, response header of a verified nonce (B.2)."""

NONCE_FIELD = "_wpnonce"
"""``$_REQUEST`` field ``rest_cookie_check_errors`` prefers to the header (B.2)."""

SESSION_COOKIE = "mwai_session_id"
"""The guest session cookie (B.2; ``classes/services/session.php:66-86``)."""

REST_HEADERS = {
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Expose-Headers": "X-WP-Total, X-WP-TotalPages, Link",
    "Access-Control-Allow-Headers": (
        "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type"
    ),
}
"""What ``WP_REST_Server::serve_request()`` sends before dispatching, besides Content-Type and
Link (source: WordPress core)."""

CORS_METHODS = "OPTIONS, GET, POST, PUT, PATCH, DELETE"
"""``rest_send_cors_headers()``: ``Access-Control-Allow-Methods`` for any ``Origin`` (source:
WordPress core)."""

# --- WordPress REST errors (B.2, B.3) ---------------------------------------------------------

NO_ROUTE = ("rest_no_route", "No route was found matching the URL and request method.", 404)
"""Unknown route or method (B.3 error table, C.3 item 3)."""

INVALID_NONCE = ("rest_cookie_invalid_nonce", "Cookie check failed", 403)
"""``rest_cookie_check_errors`` with a bad nonce (B.2; text of recent cores)."""

FORBIDDEN = ("rest_forbidden", "Sorry, you are not allowed to do that.", 401)
"""A failed permission callback for a guest (B.2)."""

INVALID_JSON = ("rest_invalid_json", "Invalid JSON body passed.", 400)
"""A JSON-typed body that does not decode (source: ``WP_REST_Request::parse_json_params``)."""

CRITICAL_ERROR = (
    "internal_server_error",
    '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org'
    '/documentation/article/faq-troubleshooting/">Learn more about troubleshooting WordPress.'
    "</a></p>",
    500,
)
"""WordPress' fatal-error handler on a REST request (a PHP ``TypeError``, e.g. a
``newMessage`` that is an array; source: WordPress core ``WP_Fatal_Error_Handler``)."""

# --- the plugin's messages (B.3) --------------------------------------------------------------

REJECTED_MSG = "Sorry, your query has been rejected."
"""``basics_security_check`` (403) and the length check (B.3 error table)."""

SHORTCUT_MSG = "Invalid or expired shortcut."
"""A ``shortcutId`` that resolves to nothing: 400 (B.3 error table)."""

MODERATION_MSG = "Sorry, your message has been rejected by moderation."
"""Moderation (B.3 error table)."""

BANNED_MSG = "Your query has been rejected."
"""Banned IP or word (B.3 error table, ``classes/modules/security.php``)."""

OVER_LIMIT_MSG = "You have reached the limit (check the Insights Tab > Limits > Guests)."
"""The guests' default ``overLimitMessage`` (B.3 error table, ``constants/init.php:80-105``)."""

OOPS_MSG = (
    "Oops! Something went wrong on the server. Please try again, and if you are the site "
    "developer, check the PHP Error Logs for details."
)
"""A PHP exception outside ``chat_submit`` while streaming (B.3 error table)."""

UNSUPPORTED_MESSAGE_MSG = "Unsupported message type."
"""``Query::set_messages`` on a ``messages`` item that is not an object (source
``classes/query/base.php:235-248``)."""

# --- stream (B.3) -----------------------------------------------------------------------------

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Type": "text/event-stream;charset=UTF-8",
    "X-Accel-Buffering": "no",
}
"""``chat_submit``'s stream headers (B.3 "Stream reply"). PHP appends its ``default_charset``
to any ``text/*`` type set with ``header()`` (source: PHP ``SAPI.c``), hence the charset."""

VISIBILITY = {
    "tool_args": "hidden",
    "debug": "hidden",
    "heartbeat": "hidden",
    "thinking": "collapsed",
    "mcp_discovery": "collapsed",
    "status": "collapsed",
}
"""An event's default ``visibility`` by ``subtype``; others are ``visible`` (B.3 table; source
``classes/event.php``)."""

USAGE_ACCURACY = "tokens"
"""``usage.accuracy`` of a reply whose counts came from the model (``real-plugins.md``)."""

RESPONSE_ID_PREFIX = "resp_"
"""``responseId`` of a reply from the Responses API: ``resp_`` and 32 hex digits in the
transcripts (``aiengine-submit-json-ok.txt``)."""

# --- the PHP session the plugin starts under /mwai/ (B.2; real-plugins.md, AI Engine 2) ----------

PHP_SESSION_PATH = "/mwai/"
"""Requests whose route starts here start a PHP session (``classes/core.php:79``)."""

PHP_SESSION_COOKIE = "PHPSESSID"
"""PHP's session cookie, set with ``path=/`` when the request has none."""

PHP_SESSION_ID_CHARS = "0123456789abcdefghijklmnopqrstuv"
PHP_SESSION_ID_LENGTH = 26
"""A new session id: 26 characters of 5 bits each (PHP 8's ``session.sid_*`` defaults)."""

PHP_SESSION_HEADERS = {
    "Expires": "Thu, 19 Nov 1981 08:52:00 GMT",
    "Cache-Control": "no-store, no-cache, must-revalidate",
    "Pragma": "no-cache",
}
"""``session_start()`` with ``session.cache_limiter = nocache`` (``aiengine-start-session.txt``)."""
