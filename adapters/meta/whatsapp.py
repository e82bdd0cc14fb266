"""ChannelSender for the WhatsApp Cloud API (Graph API `POST /{phone_number_id}/messages`).

Each call is made exactly once. requests' default adapter does not retry, and that is kept: a send
that timed out may have been accepted, and sending it again could reach the customer twice. The
caller stores the failure and a person can retry it through the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
import requests.adapters
import requests.utils

from application.ports.services import DeliveryFailed
from domain.tenancy import Channel


class WhatsAppCloudSender:
    def __init__(
        self, base_url: str, timeout_ms: int, session: requests.Session | None = None, *, connections: int = 10
    ) -> None:
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

    def send_text(self, channel: Channel, recipient_id: str, text: str) -> str:
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

    def mark_read(self, channel: Channel, platform_message_id: str) -> None:
        self._post(channel, {"messaging_product": "whatsapp", "status": "read", "message_id": platform_message_id})

    def _post(self, channel: Channel, body: dict[str, Any]) -> Any:
        url = f"{self._base_url}/{quote(channel.phone_number_id, safe='')}/messages"
        token = channel.access_token
        try:
            response = self._session.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=self._timeout_s
            )
        except requests.Timeout:
            raise DeliveryFailed(
                f"the Graph API did not answer within {self._timeout_s:g} s; the message may or may not have been sent"
            ) from None
        except requests.RequestException as error:
            # `from None`: the chained exception would carry the prepared request, headers and all.
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
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return DeliveryFailed(
            _without(token, f"the Graph API answered HTTP {response.status_code}: {response.text:.200}")
        )
    code = error.get("code")
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    return DeliveryFailed(
        _without(token, message),
        code=str(code) if code is not None else None,
        details=_without(token, str(details)) if details is not None else None,
    )


def _without(token: str, text: str) -> str:
    return text.replace(token, "***") if token else text
