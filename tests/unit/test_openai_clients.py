"""OpenAIClients: one client per call in flight, the most recently returned lent first."""

from __future__ import annotations

from adapters.openai.clients import OpenAIClients


def make() -> OpenAIClients:
    return OpenAIClients(api_key="sk-test", base_url="http://127.0.0.1:9/v1", timeout_s=1.0)


def test_calls_one_after_another_get_the_same_client() -> None:
    clients = make()
    with clients.lent() as first:
        pass
    with clients.lent() as second:
        pass

    assert second is first
    assert clients.made == 1


def test_calls_at_once_never_share_a_client() -> None:
    clients = make()
    with clients.lent() as first, clients.lent() as second, clients.lent() as third:
        assert len({id(first), id(second), id(third)}) == 3

    assert clients.made == 3


def test_the_client_returned_last_is_lent_first() -> None:
    clients = make()
    with clients.lent() as first, clients.lent() as second:
        pass  # `second` is given back first, then `first`
    with clients.lent() as again:
        assert again is first
        with clients.lent() as next_one:
            assert next_one is second


def test_a_client_is_given_back_when_its_call_fails() -> None:
    clients = make()
    try:
        with clients.lent() as failed:
            raise RuntimeError("the call failed")
    except RuntimeError:
        pass
    with clients.lent() as after:
        assert after is failed


def test_clients_keep_the_timeout_and_make_no_retries_of_their_own() -> None:
    with make().lent() as client:
        assert client.timeout == 1.0
        assert client.max_retries == 0
        assert str(client.base_url) == "http://127.0.0.1:9/v1/"
