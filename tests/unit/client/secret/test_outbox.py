"""Packing a secret send into ``secret.send`` requests: one request when it fits; otherwise
requests cut at user boundaries, each within the server's limits (messages, group fan-out,
recipients, frame size), and naming as recipients every user whose devices it addresses."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from samizdat.client.secret.outbox import MAX_REQUEST_BYTES, Outgoing, plan
from samizdat.client.secret.state import KnownDevice
from samizdat.protocol.methods import MAX_BATCH_IDS, MAX_SECRET_FANOUT, SendSecretParams

GROUP_CIPHERTEXT = "G" * 6000  # about what a 4,096-character text makes under Megolm


def device(user_id: int, device_id: int) -> KnownDevice:
    return KnownDevice(
        user_id=user_id,
        device_id=device_id,
        identity_key=f"identity-{device_id}",
        signing_key=f"signing-{device_id}",
        first_seen=0.0,
    )


def sealed(size: int = 300) -> dict[str, Any]:
    return {"olm_type": 1, "ciphertext": "O" * size}


def users_with_devices(users: int, per_user: int, first_user: int = 1) -> list[KnownDevice]:
    return [
        device(user, user * 1000 + d)
        for user in range(first_user, first_user + users)
        for d in range(per_user)
    ]


def request_users(request: dict[str, Any]) -> set[int]:
    """The users a request addresses devices of (by the id scheme of users_with_devices)."""
    ids = [m["device_id"] for m in request.get("messages", [])]
    ids += request["group"]["device_ids"] if "group" in request else []
    return {device_id // 1000 for device_id in ids}


def group_ids(request: dict[str, Any]) -> list[int]:
    return list(request["group"]["device_ids"]) if "group" in request else []


def assert_within_limits(requests: list[dict[str, Any]]) -> None:
    for request in requests:
        assert len(request.get("messages", [])) <= MAX_BATCH_IDS
        assert len(group_ids(request)) <= MAX_SECRET_FANOUT
        assert len(orjson.dumps(request)) <= MAX_REQUEST_BYTES
        assert request.get("messages") or request.get("group")


def assert_cut_at_user_boundaries(
    requests: list[dict[str, Any]], devices: list[KnownDevice]
) -> None:
    """Every user's devices are all in exactly one request, which lists the user."""
    owner: dict[int, int] = {}
    for index, request in enumerate(requests):
        for user in request_users(request):
            assert user not in owner, f"user {user} is split over two requests"
            owner[user] = index
            assert user in request.get("recipients", [])
    assert set(owner) == {d.user_id for d in devices}


# Small sends


def test_a_small_olm_send_is_one_request_naming_every_user() -> None:
    devices = [device(1, 1001), device(2, 2001), device(2, 2002)]
    outgoing = Outgoing(recipients=[1, 2], olm=[(d, sealed()) for d in devices])
    (request,) = plan(outgoing)
    assert request["recipients"] == [1, 2]
    assert [m["device_id"] for m in request["messages"]] == [1001, 2001, 2002]
    assert request["messages"][0] == {"device_id": 1001, **sealed()}
    assert "group" not in request
    SendSecretParams.model_validate(request)


def test_a_small_group_send_is_one_request_with_the_group_ciphertext() -> None:
    devices = users_with_devices(3, 2)
    outgoing = Outgoing(
        recipients=[1, 2, 3], group_ciphertext=GROUP_CIPHERTEXT, group_devices=devices
    )
    (request,) = plan(outgoing)
    assert request["recipients"] == [1, 2, 3]
    assert request["group"] == {
        "ciphertext": GROUP_CIPHERTEXT,
        "device_ids": [d.device_id for d in devices],
    }
    assert "messages" not in request
    SendSecretParams.model_validate(request)


def test_a_group_key_and_the_group_message_go_together() -> None:
    newcomer = device(3, 3000)
    members = users_with_devices(3, 1)
    outgoing = Outgoing(
        recipients=[1, 2, 3],
        olm=[(newcomer, sealed())],
        group_ciphertext=GROUP_CIPHERTEXT,
        group_devices=members,
    )
    (request,) = plan(outgoing)
    assert [m["device_id"] for m in request["messages"]] == [3000]
    assert group_ids(request) == [1000, 2000, 3000]  # the same device gets both
    SendSecretParams.model_validate(request)


def test_users_with_no_devices_are_still_named_as_recipients() -> None:
    outgoing = Outgoing(recipients=[1, 2, 3, 4], olm=[(device(2, 2001), sealed())])
    (request,) = plan(outgoing)
    assert sorted(request["recipients"]) == [1, 2, 3, 4]


def test_a_send_with_no_devices_at_all_makes_no_request() -> None:
    assert plan(Outgoing(recipients=[1, 2])) == []


def test_devices_of_users_not_in_recipients_ride_along_unchecked() -> None:
    # A verification goes to one device of a user: that user's other devices are not missing.
    outgoing = Outgoing(
        recipients=[1], olm=[(device(1, 1000), sealed()), (device(7, 7001), sealed())]
    )
    (request,) = plan(outgoing)
    assert request["recipients"] == [1]
    assert [m["device_id"] for m in request["messages"]] == [1000, 7001]
    (alone,) = plan(Outgoing(recipients=[], olm=[(device(7, 7001), sealed())]))
    assert "recipients" not in alone
    assert alone["messages"][0]["device_id"] == 7001


# Large group fan-out


def big_group() -> tuple[Outgoing, list[KnownDevice]]:
    devices = users_with_devices(1250, 2)
    assert len(devices) == 2500
    return (
        Outgoing(
            recipients=list(range(1, 1251)),
            group_ciphertext=GROUP_CIPHERTEXT,
            group_devices=devices,
        ),
        devices,
    )


def test_a_fan_out_to_2500_devices_is_cut_within_the_limits() -> None:
    outgoing, devices = big_group()
    requests = plan(outgoing)
    assert len(requests) >= 3
    assert_within_limits(requests)
    addressed = [device_id for request in requests for device_id in group_ids(request)]
    assert sorted(addressed) == sorted(d.device_id for d in devices)
    assert all(r["group"]["ciphertext"] == GROUP_CIPHERTEXT for r in requests)


def test_a_fan_out_to_2500_devices_is_cut_at_user_boundaries() -> None:
    outgoing, devices = big_group()
    requests = plan(outgoing)
    assert_cut_at_user_boundaries(requests, devices)
    named = [user for request in requests for user in request["recipients"]]
    assert sorted(named) == list(range(1, 1251))  # each user named exactly once


def test_a_fan_out_with_room_keys_for_some_devices_is_cut_within_the_limits() -> None:
    outgoing, devices = big_group()
    outgoing.olm = [(d, sealed(400)) for d in devices[:300]]  # a new key for 150 users
    requests = plan(outgoing)
    assert_within_limits(requests)
    assert_cut_at_user_boundaries(requests, devices)
    messages = [m["device_id"] for request in requests for m in request.get("messages", [])]
    assert sorted(messages) == sorted(d.device_id for d in devices[:300])


def test_users_with_no_devices_in_a_big_fan_out_appear_in_some_request() -> None:
    outgoing, devices = big_group()
    deviceless = [5000, 5001, 5002]
    outgoing.recipients = [5000, *outgoing.recipients[:600], 5001, *outgoing.recipients[600:]]
    outgoing.recipients.append(5002)
    requests = plan(outgoing)
    named = {user for request in requests for user in request["recipients"]}
    assert set(deviceless) <= named
    assert_cut_at_user_boundaries(requests, devices)


def test_every_request_of_a_big_fan_out_is_valid_for_the_server() -> None:
    outgoing, _ = big_group()
    for request in plan(outgoing):
        assert len(request["recipients"]) <= MAX_BATCH_IDS
        SendSecretParams.model_validate(request)


# Large Olm sends


def test_an_olm_send_to_300_devices_is_cut_into_requests_of_at_most_100_messages() -> None:
    devices = users_with_devices(150, 2)
    outgoing = Outgoing(recipients=list(range(1, 151)), olm=[(d, sealed(200)) for d in devices])
    requests = plan(outgoing)
    assert len(requests) == 3
    assert [len(r["messages"]) for r in requests] == [100, 100, 100]
    assert_within_limits(requests)
    assert_cut_at_user_boundaries(requests, devices)
    for request in requests:
        SendSecretParams.model_validate(request)


def test_an_olm_send_to_300_single_device_users_is_valid_for_the_server() -> None:
    devices = users_with_devices(300, 1)
    outgoing = Outgoing(recipients=list(range(1, 301)), olm=[(d, sealed(200)) for d in devices])
    requests = plan(outgoing)
    assert all(len(r["messages"]) <= MAX_BATCH_IDS for r in requests)
    assert sum(len(r["messages"]) for r in requests) == 300
    for request in requests:
        SendSecretParams.model_validate(request)


def test_large_ciphertexts_are_cut_by_size() -> None:
    devices = users_with_devices(20, 1)
    outgoing = Outgoing(recipients=list(range(1, 21)), olm=[(d, sealed(10_000)) for d in devices])
    requests = plan(outgoing)
    assert len(requests) > 1
    assert_within_limits(requests)
    assert_cut_at_user_boundaries(requests, devices)


def test_a_user_with_more_devices_than_one_request_can_address_is_refused() -> None:
    devices = users_with_devices(1, MAX_BATCH_IDS + 1)
    outgoing = Outgoing(recipients=[1], olm=[(d, sealed(50)) for d in devices])
    with pytest.raises(ValueError, match="more devices than one request"):
        plan(outgoing)


def test_a_user_with_no_devices_after_a_full_request_is_still_named() -> None:
    # 10 ciphertexts of 4,842 characters fill the first request to within 24 bytes of the
    # estimate's limit, so the next user (no devices) starts a request of their own.
    devices = users_with_devices(1, 10)
    outgoing = Outgoing(recipients=[1, 2], olm=[(d, sealed(4842)) for d in devices])
    requests = plan(outgoing)
    assert {user for request in requests for user in request["recipients"]} == {1, 2}
