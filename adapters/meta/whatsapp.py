"""ChannelSender for the WhatsApp Cloud API (Graph API `POST /{phone_number_id}/messages`).

Each call is made once. requests' default adapter does not retry, and that is kept: a send that
timed out may have been accepted, and sending it again could reach the customer twice. A failure is
marked `retry_safe` only when the message certainly did not go out and Meta asks to be tried again
later — the rate limits and short downtimes of its documented error codes, or a connection that was
never made — so that the worker may send it again later; anything else is final.

Calls go through a circuit breaker: after repeated failures that say the Graph API is down (5xx,
timeouts, connections refused, "service temporarily unavailable"), sends stop for a while and fail at
once as retry-safe, and the worker keeps the replies waiting instead of failing them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
import requests.adapters
import requests.utils
import urllib3.exceptions

from adapters.circuit import Circuit, CircuitOpen
from application.ports.services import DeliveryFailed
from domain.tenancy import Channel

#: Meta's codes that say the message was not taken and may be sent again later: throughput and pair
#: rate limits, app and account call limits, a number in maintenance, a temporary downtime.
#: (131000 "something went wrong" is not among them: Meta does not say the message did not go out.)
RETRY_SAFE_CODES = frozenset({"130429", "131056", "4", "80007", "131057", "131016", "2"})

#: Of those, the ones that say the Graph API itself is down (not one number or one customer throttled).
_DOWNTIME_CODES = frozenset({"131016", "2"})


class _GraphDown(DeliveryFailed):
    """A failure that says the Graph API is down, whatever we send."""


def graph_outage(error: BaseException) -> bool:
    """What opens the Graph API's circuit."""
    return isinstance(error, _GraphDown)


class WhatsAppCloudSender:
    def __init__(
        self,
        base_url: str,
        timeout_ms: int,
        session: requests.Session | None = None,
        *,
        connections: int = 10,
        circuit: Circuit | None = None,
    ) -> None:
        self._circuit = circuit or Circuit("graph", failures=5, reset_after_s=30.0, is_outage=graph_outage)
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_ms / 1000
        if session is None:
            session = requests.Session()
            # One kept-alive connection per thread that may send at once; requests keeps 10 by default
            # and opens (and throws away) a new connection for every send beyond that.
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # requests reads proxy variables and ~/.netrc again on every call, a sizeable part of its
            # CPU per send (reference-docs/architecture.md, "What moved the numbers"); the
            # environment's proxies for Graph are read once here instead.
            session.proxies.update(requests.utils.get_environ_proxies(self._base_url))
            session.trust_env = False
        self._session = session

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        # `human_agent` never holds here: WhatsApp has no human-agent tag (its policy has no human window).
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _e164(recipient_id),
            "type": "text",
            "text": {"body": text, "preview_url": False},
        }
        answer = self._post(channel, body)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise DeliveryFailed(
                f"the Graph API accepted the message but returned no message id: {answer!r:.200}"
            ) from None

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": platform_message_id}
        if typing:  # shown until the reply is sent or for 25 s, whichever comes first (Meta, typing indicators)
            body["typing_indicator"] = {"type": "text"}
        self._post(channel, body)

    @property
    def available(self) -> bool:
        return self._circuit.available

    def _post(self, channel: Channel, body: dict[str, Any]) -> Any:
        try:
            return self._circuit.call(lambda: self._request(channel, body))
        except CircuitOpen as error:
            raise DeliveryFailed(f"not sent: {error}", retry_safe=True) from None

    def _request(self, channel: Channel, body: dict[str, Any]) -> Any:
        url = f"{self._base_url}/{quote(channel.phone_number_id, safe='')}/messages"
        token = channel.access_token
        try:
            response = self._session.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=self._timeout_s
            )
        except (requests.ConnectTimeout, requests.ConnectionError) as error:
            never_sent = _never_connected(error)
            # `from None`: the chained exception would carry the prepared request, headers and all.
            raise _GraphDown(
                _without(token, f"could not reach the Graph API: {error}")
                + ("" if never_sent else "; the message may or may not have been sent"),
                retry_safe=never_sent,
            ) from None
        except requests.Timeout:
            raise _GraphDown(
                f"the Graph API did not answer within {self._timeout_s:g} s; the message may or may not have been sent"
            ) from None
        except requests.RequestException as error:
            raise DeliveryFailed(_without(token, f"could not reach the Graph API: {error}")) from None
        if not response.ok:
            raise _delivery_failed(response, token)
        try:
            return response.json()
        except ValueError:
            raise DeliveryFailed(
                f"the Graph API answered HTTP {response.status_code} with a body that is not JSON"
            ) from None


def _e164(recipient_id: str) -> str:
    # Without "+", Meta prepends the business number's country code, which can misdeliver.
    if recipient_id.isascii() and recipient_id.isdigit():
        return f"+{recipient_id}"
    return recipient_id


def _delivery_failed(response: requests.Response, token: str) -> DeliveryFailed:
    down = response.status_code >= 500
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        reason = _without(token, f"the Graph API answered HTTP {response.status_code}: {response.text:.200}")
        return _GraphDown(reason) if down else DeliveryFailed(reason)
    code = None if error.get("code") is None else str(error.get("code"))
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    kind = _GraphDown if down or code in _DOWNTIME_CODES else DeliveryFailed
    return kind(
        _without(token, message),
        code=code,
        details=_without(token, str(details)) if details is not None else None,
        retry_safe=code in RETRY_SAFE_CODES,
    )


def _never_connected(error: requests.RequestException) -> bool:
    """True when the request never reached Meta: the connection was refused or not made in time."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    inner = error.args[0] if error.args else None  # urllib3's MaxRetryError, whose reason is the cause
    return isinstance(getattr(inner, "reason", inner), urllib3.exceptions.ConnectTimeoutError)


def _without(token: str, text: str) -> str:
    return text.replace(token, "***") if token else text
