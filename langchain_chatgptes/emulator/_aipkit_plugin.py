"""The AIPKit plugin's names and strings (AI Power / "AI Puffer" >= 2.3), as the plugin has them.

Written here from ``shared/reference/wp-chat-plugins.md`` Part A and checklist C.2 (the section
is named on each), not imported from the client: the emulator is an independent second
writing of the same facts. A few details the reference leaves open were read from the plugin's
own source (``WordPressBugBounty/plugins-gpt3-ai-content-generator``); those say "source".
"""

from __future__ import annotations

# --- versions (A.6) ---------------------------------------------------------------------------

LATEST_VERSION = "2.4.71"
"""The version the reference documents (A.6, C.2 "target 2.4.71")."""

V_STREAM_NONCE_TEXT = (2, 3, 20)
"""From 2.3.20 the stream's nonce failure says :data:`STREAM_NONCE_MSG` (before:
:data:`OLD_STREAM_NONCE_MSG`); the non-stream handler checks the nonce from 2.3.20 too (source)."""

V_CORS = (2, 3, 31)
"""``AIPKit_CORS_Manager`` and ``bot_id`` in the cache POST (A.6)."""

V_NONCE_REFRESH = (2, 3, 41)
"""The ``aipkit_get_frontend_chat_nonce`` endpoint and the ``_ts`` parameter (A.6)."""

V_NO_USER_IP = (2, 3, 88)
"""``userIp`` left ``data-config`` (A.1, A.6)."""

V_PREAMBLE = (2, 3, 93)
"""The 4096-space SSE comment preamble and ``citations`` events (A.3.4, A.6)."""

V_STREAM_ONLY = (2, 4, 1)
"""``streamEnabled`` and ``aipkit_frontend_chat_message`` removed (A.3.5, A.6)."""

V_QUOTA_NOTICE = (2, 4, 5)
"""``quota_notice`` in stream ``error`` events (A.6)."""

# --- page (A.1) -------------------------------------------------------------------------------

PLUGIN_PATH = "/wp-content/plugins/gpt3-ai-content-generator"
"""The plugin directory (A.1 "Globals / scripts")."""

SCRIPT_PATH = PLUGIN_PATH + "/dist/js/public-main.bundle.js"
"""The public bundle (A.1, C.1 step 6)."""

SCRIPT_ID = "aipkit-public-main-js"
"""``id`` of the bundle's ``<script>`` (handle ``aipkit-public-main``, A.1)."""

CONTAINER_CLASS = "aipkit_chat_container"
"""The chat container; carries ``data-config`` in inline mode (A.1)."""

POPUP_CLASS = "aipkit_popup_wrapper"
"""The popup wrapper; carries ``data-config`` in popup mode (A.1)."""

CONFIG_GLOBAL = "aipkit_chat_config_global"
"""The ``wp_localize_script`` object (``['text' => …]``, A.1)."""

NONCE_ACTION_GLOBAL = "aipkit_getChatNonceAction"
"""``window.aipkit_getChatNonceAction``, set inline before the bundle (A.1)."""

DEFAULT_IMAGE_TRIGGERS = "/image, /generate"
"""``data-config.imageTriggers`` default (A.1 table, 2.4.71)."""

TEXT_LABELS = {
    "typeMessage": "Type your message...",
    "errorPrefix": "Error:",
    "streamError": "Stream error. Please try again.",
    "connError": "Connection error. Please try again.",
    "consentTitle": "Consent Required",
}
"""``data-config.text`` (A.1: ``typeMessage``/``errorPrefix`` values from the example; the
other values are the emulator's, the reference names only the keys)."""

# --- nonce and admin-ajax actions (A.2, A.3) --------------------------------------------------

NONCE_ACTION = "aipkit_frontend_chat_nonce"
"""The nonce action of ``data-config.nonce`` and ``_ajax_nonce`` (A.2, C.2 item 1)."""

NONCE_FIELD = "_ajax_nonce"
"""The nonce's request field (A.2)."""

REFRESH_ACTION = "aipkit_get_frontend_chat_nonce"
"""The nonce refresh endpoint, >= 2.3.41 (A.2)."""

CACHE_ACTION = "aipkit_cache_sse_message"
"""Step 1: cache the user message (A.3.2)."""

STREAM_ACTION = "aipkit_frontend_chat_stream"
"""Step 2: the SSE stream (A.3.3)."""

MESSAGE_ACTION = "aipkit_frontend_chat_message"
"""The non-streaming endpoint of 2.3 -> 2.4.0 (A.3.5)."""

CHAT_ACTIONS = (CACHE_ACTION, STREAM_ACTION, MESSAGE_ACTION)
"""The admin-ajax actions of one chat turn (what ``chat_requests()`` lists in AIPKit mode)."""

# --- cache (A.3.2) ----------------------------------------------------------------------------

CACHE_KEY_PREFIX = "aipkit_sse_"
"""``'aipkit_sse_' . wp_generate_password(32, false, false)`` (A.3.2)."""

CACHE_KEY_LENGTH = 32
"""Random ``[A-Za-z0-9]`` characters after the prefix (A.3.2)."""

CACHE_TTL = 60.0
"""Seconds a cached message lives (A.3.2; source: valid while ``expires_at > now``)."""

# --- JSON error bodies (A.2, A.4) -------------------------------------------------------------

CACHE_NONCE_MSG = (
    "Your session has expired or the request is invalid. Please refresh the page and try again."
)
CACHE_NONCE_CODE = "nonce_failure_cache_sse"
"""Cache POST with a bad nonce: 403 (A.4)."""

EMBED_NOT_AVAILABLE_MSG = "Embed feature is not available with your current plan."
EMBED_NOT_AVAILABLE_CODE = "embed_not_available"
"""Cross-origin cache POST without Pro: 403 (A.4)."""

CORS_DENIED_MSG = "This domain is not permitted to access the chatbot."
CORS_DENIED_CODE = "cors_denied"
"""Cross-origin, origin not allowed: 403 JSON (cache, nonce) or a stream ``error`` (A.2, A.4)."""

EMPTY_CACHE_MSG = "Data to cache (message or image) cannot be empty."
EMPTY_CACHE_CODE = "empty_data_to_cache"
"""Cache POST without message or image: 400 (A.4)."""

# --- stream errors (A.3.3, A.4) ---------------------------------------------------------------

STREAM_NONCE_MSG = "Security check failed. Please refresh the page and try again."
"""Stream nonce failure >= 2.3.20 (A.3.3 step 3); also the 403 of the non-stream endpoint."""

OLD_STREAM_NONCE_MSG = "Security check failed (nonce)."
"""Stream nonce failure 2.3.0 - 2.3.19 (A.6)."""

KEY_MISSING_MSG = "Message cache key is missing."
KEY_NOT_FOUND_MSG = "Message not found in cache."
KEY_EXPIRED_MSG = "Cached message has expired."
"""Cache lookup (A.3.3 step 4)."""

INVALID_BOT_MSG = "Invalid chatbot specified."
CONVERSATION_MISSING_MSG = "Conversation ID is missing."
SESSION_MISSING_MSG = "Session ID is missing for guest."
EMPTY_MESSAGE_MSG = "Message or image cannot be empty."
"""Validation (A.3.3 step 5)."""

GUESTS_DISABLED_MSG = "Access disabled for guests."
QUOTA_MSG = "You have reached your quota for this period."
"""Quota (A.3.3 step 6): guest limit ``0``, exhausted (the bot's default limit message)."""

IP_BANNED_MSG = "Access from your IP address has been blocked."
WORD_BANNED_MSG = "Sorry, your message could not be sent as it contains prohibited words."
MODERATION_FLAGGED_MSG = "Your message was flagged by the moderation system and could not be sent."
"""Moderation (A.3.3 step 7)."""

API_KEY_MISSING_MSG = "API key missing for OpenAI."
"""Missing provider key, before ``message_start`` (A.3.3 step 8)."""

API_ERROR_PREFIX = "API Error: "
CONNECTION_ERROR_PREFIX = "Connection Error: "
NO_DATA_MSG = "Connection error: no data received from AI."
"""Provider failures after ``message_start``: ``error`` without ``done`` (A.3.4)."""

# --- non-stream endpoint (A.3.5; texts and statuses of 2.4.0 from the source) ----------------

BOT_ID_REQUIRED_MSG = "Bot ID is required."
CONVERSATION_REQUIRED_MSG = "Conversation ID is required."
BOT_CONFIG_MSG = "Could not load chatbot configuration."
"""``class-chat-message-validator.php`` / ``ajax_frontend_chat_message.php`` @2.4.0 (source)."""

# --- SSE framing (A.3.4) ----------------------------------------------------------------------

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0, no-transform",
    "Pragma": "no-cache",
    "Content-Type": "text/event-stream; charset=utf-8",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
"""The stream's headers (A.3.4, ``formatter/methods.php:61-69@2.4.71``)."""

OLD_CACHE_CONTROL = "no-cache, no-store, must-revalidate, max-age=0"
"""2.3 lacked ``no-transform`` (A.3.4); the emulator drops it together with the preamble."""

PREAMBLE = b":" + b" " * 4096 + b"\n\n"
"""The one-time SSE comment, >= 2.3.93 (A.3.4)."""

MESSAGE_ID_PREFIX = "aipkit-msg-"
"""``message_start`` id: ``aipkit-msg-<uniqid('', true)>`` (A.3.4)."""

ERROR_ID_PREFIX = "err-"
"""``id: err-<unix time>`` of ``error`` and ``warning`` events (A.3.4)."""

MAX_MESSAGES = 15
"""History turns fed to the model, the bot setting's default (A.5)."""

# --- the OpenAI provider's Responses API (real-plugins.md, AIPKit 1) ------------------------------

RESPONSE_STATUSES = ("response.created", "response.in_progress")
"""The ``status`` events sent, in this order, once the upstream response began
(``{"type":…,"status":"in_progress","response_id":"resp_…"}``; ``aipkit-stream-ok.txt``)."""

RESPONSE_ID_EVENT = "openai_response_id"
"""The event naming the upstream response (``{"id":"resp_…"}``), last before ``done``."""

RESPONSE_ID_PREFIX = "resp_"
"""OpenAI's response ids: ``resp_`` and 32 hex digits in the transcripts."""
