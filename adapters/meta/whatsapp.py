"""ChannelSender for the WhatsApp Cloud API (Graph API `POST /{phone_number_id}/messages`).

Each call is made once (no retry, no redirect followed): a send that timed out may have been accepted,
and sending it again could reach the customer twice. A failure is
marked `retry_safe` only when the message certainly did not go out and Meta asks to be tried again
later — the rate limits and short downtimes of its documented error codes, or a connection that was
never made — so that the worker may send it again later; anything else is final.

Calls go through a circuit breaker: after repeated failures that say the Graph API is down (5xx,
timeouts, connections refused, "service temporarily unavailable"), sends stop for a while and fail at
once as retry-safe, and the worker keeps the replies waiting instead of failing them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import requests.utils
import urllib3

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
        *,
        connections: int = 10,
        circuit: Circuit | None = None,
    ) -> None:
        self._circuit = circuit or Circuit("graph", failures=5, reset_after_s=30.0, is_outage=graph_outage)
        self._base_url = base_url.rstrip("/")
        self._timeout = urllib3.Timeout(connect=timeout_ms / 1000, read=timeout_ms / 1000)
        self._http = _connections_to(self._base_url, connections)

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
            response = self._http.request(
                "POST",
                url,
                body=json.dumps(body, allow_nan=False).encode("utf-8"),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=self._timeout,
                retries=False,
            )
        except urllib3.exceptions.ConnectTimeoutError as error:  # refused, unresolved or not made in time
            # `from None`: the chained exception would carry the connection, and the request's headers.
            raise _GraphDown(_without(token, f"could not reach the Graph API: {error}"), retry_safe=True) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise _GraphDown(
                f"the Graph API did not answer within {self._timeout.read_timeout:g} s; "
                "the message may or may not have been sent"
            ) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError, urllib3.exceptions.ProxyError) as error:
            raise _GraphDown(
                _without(token, f"could not reach the Graph API: {error}; the message may or may not have been sent")
            ) from None
        except urllib3.exceptions.HTTPError as error:
            raise DeliveryFailed(_without(token, f"could not reach the Graph API: {error}")) from None
        if response.status >= 400:
            raise _delivery_failed(response.status, response.data, token)
        try:
            return json.loads(response.data)
        except ValueError:
            raise DeliveryFailed(
                f"the Graph API answered HTTP {response.status} with a body that is not JSON"
            ) from None


def _connections_to(base_url: str, connections: int) -> urllib3.PoolManager:
    """Kept-alive connections to the Graph API, one per thread that may send at once.

    urllib3 is requests' own transport, used directly: a send costs about half the CPU it did through
    a requests session (`python -m bench.clients`), which the worker pays twice per AI turn (the read
    receipt and the reply). What requests added is kept: the environment's proxy for Graph (read once;
    `NO_PROXY` honoured) and certifi's certificates.
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    proxy = proxies.get(urlsplit(base_url).scheme) or proxies.get("all")
    options: dict[str, Any] = {"maxsize": connections, "block": False, "ca_certs": certifi.where()}
    return urllib3.ProxyManager(proxy, num_pools=1, **options) if proxy else urllib3.PoolManager(1, **options)


def _e164(recipient_id: str) -> str:
    # Without "+", Meta prepends the business number's country code, which can misdeliver.
    if recipient_id.isascii() and recipient_id.isdigit():
        return f"+{recipient_id}"
    return recipient_id


def _delivery_failed(status: int, data: bytes, token: str) -> DeliveryFailed:
    down = status >= 500
    try:
        error = json.loads(data)["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = data.decode("utf-8", errors="replace")
        reason = _without(token, f"the Graph API answered HTTP {status}: {text:.200}")
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


def _without(token: str, text: str) -> str:
    return text.replace(token, "***") if token else text
