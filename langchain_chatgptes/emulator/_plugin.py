"""The AI Power plugin's strings, as the plugin's source has them.

Written here from ``shared/reference/chatgptes-protocol.md`` (the section is named on each),
not imported from the client: the emulator is an independent second writing of the same
facts, and ``tests/emulator_tests/test_agreement.py`` checks that the two agree.
"""

from __future__ import annotations

# --- WordPress and the chat box (§3.1-§3.4) --------------------------------------------------

AJAX_PATH = "/wp-admin/admin-ajax.php"
"""The WordPress Ajax endpoint (§1 "Endpoint", §3.2 ``ajax_url``, §3.4)."""

ACTION = "wpaicg_chat_shortcode_message"
"""The shortcode chat box's action (§3.1 ``wp_ajax_nopriv_wpaicg_chat_shortcode_message``)."""

WIDGET_ACTION = "wpaicg_chatbox_message"
"""The widget's action, handled by the same method (§3.1)."""

CHAT_BOX_CLASS = "wpaicg-chat-shortcode"
"""The class of the shortcode template's ``div`` (§3.2)."""

PARAMS_VARIABLE = "wpaicgParams"
"""The ``wp_localize_script`` object with ``ajax_url`` and ``search_nonce`` (§3.2 footer)."""

NONCE_ACTION = "wpaicg-chatbox"
"""The nonce action of ``data-nonce`` and ``search_nonce`` (§3.3 "Action string")."""

# --- nonce failures (§3.3) -------------------------------------------------------------------

NONCE_EXPIRED_TEXT = "The link you followed has expired."
"""Body of the HTTP 403 from ``check_admin_referer`` / ``wp_nonce_ays`` (plugin >= 1.8.91)."""

NONCE_FAILED_MSG = "Nonce verification failed"
"""``msg`` of the HTTP 200 error JSON of plugin <= 1.8.90."""

# --- the handler's replies (§3.5, §3.6) ------------------------------------------------------

GREETING = (
    "Converse as if you were an AI assistant. Answer the question as truthfully as possible "
    "using the provided text. Tone: professional"
)
"""The English system text (§3.5, ``languages/en.json``, its ``%s`` filled with a tone)."""

STALE_MSG = "Something went wrong"
"""The ``msg`` of a success JSON: the initial value the handler never clears (§3.6)."""

EMPTY_MESSAGE_MSG = "It appears that nothing was inputted."
"""Error ``msg`` for an empty message (§3.6)."""

IP_BANNED_MSG = "You are not allowed to access this feature."
"""Error ``msg`` for a banned IP (§3.6)."""

WORD_BANNED_MSG = (
    "Your message contains prohibited words. Please modify your message and try again."
)
"""Error ``msg`` for a banned word (§3.6)."""

LIMIT_REACHED_MSG = "You have reached your token limit."
"""``msg`` of the token-limit object (§3.6)."""

TOKEN_LIMIT_KEY = "tokenLimitReached"  # noqa: S105 (a JSON key, not a password)
"""The token-limit object's flag key (§3.6)."""

FLAG_KEYS = ("ipBanned", "messageFlagged", TOKEN_LIMIT_KEY)
"""Keys of the flag objects sent as ``data:`` events in stream mode (§3.6)."""

# --- chatgpt.es' own addition (§3.7) ---------------------------------------------------------

CHECKBOX_MESSAGE = "Du musst das Kästchen anklicken!"
"""The site's consent-checkbox sentence, found in a success JSON's ``data`` (§3.7; not in the
plugin itself)."""
