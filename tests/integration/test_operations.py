"""What an operator watches: ``/health`` and Prometheus ``/metrics``."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from samizdat.client import Client
from tests.harness import ServerProcess, signed_in


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


class Scrape:
    """One parsed /metrics page: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in self.families.values():
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def buckets(self, name: str) -> dict[str, float]:
        return {
            dict(labels)["le"]: value
            for (sample, labels), value in self.samples.items()
            if sample == f"{name}_bucket"
        }


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def test_health_is_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_is_prometheus_text_with_the_documented_series(
    http: httpx.AsyncClient,
) -> None:
    page = await scrape(http)
    assert page.families["samizdat_connections"].type == "gauge"
    assert page.families["samizdat_messages_sent"].type == "counter"
    assert page.families["samizdat_send_latency_seconds"].type == "histogram"
    page.value("samizdat_messages_sent_total")
    buckets = page.buckets("samizdat_send_latency_seconds")
    assert "+Inf" in buckets
    assert len(buckets) >= 10
    assert page.value("samizdat_send_latency_seconds_count") == buckets["+Inf"]


async def test_metrics_move_when_messages_are_sent(
    http: httpx.AsyncClient, alice: Client, bob: Client
) -> None:
    assert bob.me is not None
    chat_id = (await alice.call("chats.open_private", user_id=bob.me.id))["id"]
    before = await scrape(http)

    sends = 25
    await asyncio.gather(
        *(
            alice.call(
                "messages.send", chat_id=chat_id, text=f"m{n}", random_id=secrets.randbits(62)
            )
            for n in range(sends)
        )
    )
    # A retried send is acknowledged again but is not a new message.
    first = await alice.call("messages.send", chat_id=chat_id, text="once", random_id=42)
    again = await alice.call("messages.send", chat_id=chat_id, text="once", random_id=42)
    assert again["message"]["id"] == first["message"]["id"]

    after = await scrape(http)
    sent = after.value("samizdat_messages_sent_total") - before.value(
        "samizdat_messages_sent_total"
    )
    assert sent == sends + 1
    observed = after.value("samizdat_send_latency_seconds_count") - before.value(
        "samizdat_send_latency_seconds_count"
    )
    assert observed == sends + 2
    assert after.value("samizdat_send_latency_seconds_sum") > before.value(
        "samizdat_send_latency_seconds_sum"
    )
    old, new = (
        before.buckets("samizdat_send_latency_seconds"),
        after.buckets("samizdat_send_latency_seconds"),
    )
    assert new["+Inf"] - old["+Inf"] == sends + 2
    ordered = sorted(new.items(), key=lambda item: float(item[0]))
    counts = [count for _, count in ordered]
    assert counts == sorted(counts), "histogram buckets are cumulative"
    # Bob is online, so each of the 26 new messages was queued to his socket.
    assert after.value("samizdat_deliveries_total") - before.value("samizdat_deliveries_total") >= (
        sends + 1
    )


async def test_the_connections_gauge_follows_authorised_sockets(
    server: ServerProcess, http: httpx.AsyncClient, alice: Client
) -> None:
    async def connections() -> float:
        return (await scrape(http)).value("samizdat_connections")

    async def settles_at(expected: float) -> None:
        async with asyncio.timeout(10):
            while await connections() != expected:
                await asyncio.sleep(0.05)

    baseline = await connections()
    carol = await signed_in(server.url, "Carol")
    await settles_at(baseline + 1)
    dave = await signed_in(server.url, "Dave")
    await settles_at(baseline + 2)
    await carol.close()
    await settles_at(baseline + 1)
    await dave.close()
    await settles_at(baseline)
