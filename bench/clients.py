"""CPU per call of the two HTTP clients on the hot path, in the ways the service could use them.

    python -m bench.clients [--calls 300]

Each client talks to the stand-in server in its own process, so `time.process_time()` here is the
client's cost alone: `requests` with and without its per-call environment lookups (proxy variables,
netrc), through its adapter directly, urllib3 (its transport) alone, and the service's own
`WhatsAppCloudSender` (a text send, circuit breaker and answer reading included); and the OpenAI
SDK's typed `responses.create` against its generic `post`, on its own HTTP stack, on urllib3 and on a
client lent by `OpenAIClients`, and what making a client costs, with its own certificates or sharing them.
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx2
import openai
import requests
import requests.adapters
import urllib3

from adapters.meta.whatsapp import WhatsAppCloudSender
from adapters.openai.clients import OpenAIClients
from domain.channels import ChannelType
from domain.tenancy import Channel
from tests.support.processes import free_port, wait_for


def _server(module: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], stdout=subprocess.DEVNULL)

    def up() -> bool:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.2)
            return True
        except requests.RequestException:
            return False

    wait_for(up, timeout=20, what=module)
    return process, port


class _Urllib3Transport(httpx2.BaseTransport):
    """The OpenAI SDK's HTTP client on urllib3 (what `requests` uses) instead of httpcore: is it cheaper?"""

    def __init__(self) -> None:
        self._pool = urllib3.PoolManager(maxsize=10, retries=False)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        answer = self._pool.request(
            request.method, str(request.url), body=request.read(), headers=dict(request.headers), timeout=30
        )
        return httpx2.Response(answer.status, headers=list(answer.headers.items()), content=answer.data)


def _cpu_ms_per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(30):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    return round((time.process_time() - started) * 1000 / calls, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    calls = parser.parse_args(argv).calls
    graph, graph_port = _server("tests.support.standin_graph")
    ai, ai_port = _server("tests.support.standin_openai")
    try:
        url = f"http://127.0.0.1:{graph_port}/v24.0/100/messages"
        body = {"messaging_product": "whatsapp", "to": "+15550001", "type": "text", "text": {"body": "hi"}}
        figures: dict[str, float] = {}
        for trust_env in (True, False):
            session = requests.Session()
            session.trust_env = trust_env
            figures[f"requests_graph_send_trust_env_{str(trust_env).lower()}"] = _cpu_ms_per_call(
                lambda s=session: s.post(url, json=body, headers={"Authorization": "Bearer t"}, timeout=5), calls
            )
        client = openai.OpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{ai_port}/v1", max_retries=0)
        conversation = client.conversations.create().id
        request = {
            "prompt": {"id": "pmpt_bench"},
            "conversation": conversation,
            "input": [{"role": "user", "content": "hi"}],
            "store": True,
        }
        figures["openai_responses_create_typed"] = _cpu_ms_per_call(
            lambda: client.responses.create(**request).output_text,
            calls,  # type: ignore[call-overload]
        )
        figures["openai_generic_post"] = _cpu_ms_per_call(
            lambda: client.post("/responses", body=request, cast_to=object), calls
        )
        lender = OpenAIClients(api_key="sk-bench", base_url=f"http://127.0.0.1:{ai_port}/v1", timeout_s=5.0)

        def lent_post() -> object:
            with lender.lent() as lent:
                return lent.post("/responses", body=request, cast_to=object)

        figures["openai_generic_post_lent_client"] = _cpu_ms_per_call(lent_post, calls)
        # A new client the SDK's way loads the certificates itself; OpenAIClients' clients share one context.
        base_url = f"http://127.0.0.1:{ai_port}/v1"
        certificates = ssl.create_default_context()
        figures["openai_client_made"] = _cpu_ms_per_call(
            lambda: openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0), max(calls // 10, 10)
        )
        figures["openai_client_made_on_shared_tls"] = _cpu_ms_per_call(
            lambda: openai.OpenAI(
                api_key="sk-bench",
                base_url=base_url,
                max_retries=0,
                http_client=openai.DefaultHttpxClient(verify=certificates),
            ),
            max(calls // 10, 10),
        )
        on_urllib3 = openai.OpenAI(
            api_key="sk-bench",
            base_url=f"http://127.0.0.1:{ai_port}/v1",
            max_retries=0,
            http_client=httpx2.Client(transport=_Urllib3Transport()),
        )
        figures["openai_generic_post_urllib3_transport"] = _cpu_ms_per_call(
            lambda: on_urllib3.post("/responses", body=request, cast_to=object), calls
        )
        adapter = requests.adapters.HTTPAdapter(max_retries=0)

        def adapter_send() -> object:
            prepared = requests.Request("POST", url, json=body, headers={"Authorization": "Bearer t"}).prepare()
            return adapter.send(prepared, timeout=5).json()

        figures["requests_graph_send_adapter_direct"] = _cpu_ms_per_call(adapter_send, calls)
        pool = urllib3.PoolManager(maxsize=10, retries=False)
        encoded = json.dumps(body).encode()
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        figures["urllib3_graph_send"] = _cpu_ms_per_call(
            lambda: json.loads(pool.request("POST", url, body=encoded, headers=headers, timeout=5.0).data), calls
        )
        sender = WhatsAppCloudSender(f"http://127.0.0.1:{graph_port}/v24.0", timeout_ms=5000)
        channel = Channel("100", "usr_1", ChannelType.WHATSAPP, "+15550001", "t", "Shop", datetime.now(UTC))
        figures["whatsapp_sender_send_text"] = _cpu_ms_per_call(
            lambda: sender.send_text(channel, "15550002", "hi"), calls
        )
        print(json.dumps({"unit": "ms CPU per call (client process only)", "calls": calls, **figures}, indent=2))
    finally:
        graph.terminate()
        ai.terminate()


if __name__ == "__main__":
    main()
