"""``POST /api/<method>``: the WebSocket's methods and errors, as HTTP statuses and JSON bodies.

Every refusal is ``{"error": {"code", "message"}}`` with the status the error table gives its
code; ``/openapi.json`` documents every method with the schema of its request body.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from samizdat.client import Client
from samizdat.protocol.errors import HTTP_STATUS, ErrorCode
from samizdat.protocol.methods import METHODS
from tests.harness import ServerProcess, new_test_phone, second_device
from tests.raw_socket import device_id_of, token_of, user_id_of

BIG = "x" * (70 * 1024)


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


def bearer(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(client)}"}


def assert_error(response: httpx.Response, code: ErrorCode) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    assert response.status_code == HTTP_STATUS[code], (response.status_code, body)
    return dict(error)


async def test_a_script_can_sign_in_and_chat_over_http_alone(
    http: httpx.AsyncClient, bob: Client
) -> None:
    phone, code = new_test_phone()
    sent = await http.post("/api/auth.send_code", json={"phone": phone})
    assert sent.status_code == 200
    assert sent.json()["code_length"] == len(code)
    signed = await http.post(
        "/api/auth.sign_in",
        json={"phone": phone, "code": code, "device_name": "script", "display_name": "Script"},
    )
    assert signed.status_code == 200
    token = signed.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    me = await http.post("/api/users.me", headers=headers)
    assert me.status_code == 200
    assert me.json()["display_name"] == "Script"
    chat = await http.post(
        "/api/chats.open_private", headers=headers, json={"user_id": user_id_of(bob)}
    )
    assert chat.status_code == 200
    chat_id = chat.json()["id"]
    message = await http.post(
        "/api/messages.send",
        headers=headers,
        json={"chat_id": chat_id, "text": "from curl", "random_id": secrets.randbits(62)},
    )
    assert message.status_code == 200
    history = await bob.call("messages.history", chat_id=chat_id)
    assert [m["text"] for m in history["messages"]] == ["from curl"]
    assert history["messages"][0]["id"] == message.json()["message"]["id"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param(b"{not json", ErrorCode.BAD_FRAME, id="not JSON"),
        pytest.param(b"\xff\xfe", ErrorCode.BAD_FRAME, id="not UTF-8"),
        pytest.param(b"[1, 2]", ErrorCode.INVALID_PARAMS, id="array body"),
        pytest.param(b'"text"', ErrorCode.INVALID_PARAMS, id="string body"),
        pytest.param(b"null", ErrorCode.INVALID_PARAMS, id="null body"),
        pytest.param(b'{"user_id": "5"}', ErrorCode.INVALID_PARAMS, id="string for int"),
        pytest.param(b'{"user_id": 5.0}', ErrorCode.INVALID_PARAMS, id="float for int"),
        pytest.param(b'{"user_id": 0}', ErrorCode.INVALID_PARAMS, id="out of range"),
        pytest.param(b"{}", ErrorCode.INVALID_PARAMS, id="missing param"),
        pytest.param(b"", ErrorCode.INVALID_PARAMS, id="empty body"),
        pytest.param(b'{"user_id": 5, "also": 1}', ErrorCode.INVALID_PARAMS, id="extra param"),
    ],
)
async def test_a_malformed_body_is_a_400_with_a_typed_error(
    http: httpx.AsyncClient,
    alice: Client,
    content: bytes,
    code: ErrorCode,
) -> None:
    response = await http.post(
        "/api/users.get",
        content=content,
        headers={**bearer(alice), "content-type": "application/json"},
    )
    assert_error(response, code)
    assert response.status_code == 400


async def test_unknown_and_websocket_only_methods_are_404(
    http: httpx.AsyncClient, alice: Client
) -> None:
    for path in ["/api/users.delete_everyone", "/api/auth.authorize", "/api/", "/api/a/b/c"]:
        response = await http.post(path, headers=bearer(alice), json={})
        assert_error(response, ErrorCode.UNKNOWN_METHOD)
        assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no header"),
        pytest.param("", id="empty header"),
        pytest.param("Bearer", id="no token"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong scheme"),
        pytest.param("Bearer forged", id="forged token"),
        pytest.param(f"Bearer {secrets.token_urlsafe(32)}", id="unknown token"),
    ],
)
async def test_a_request_without_a_valid_token_is_401(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, body in [
        ("users.me", {}),
        ("messages.send", {"chat_id": 1, "text": "x", "random_id": 1}),
        # Who is asking is settled before the body is read, as on the WebSocket.
        ("users.get", {"user_id": "not an int"}),
    ]:
        response = await http.post(f"/api/{method}", headers=headers, json=body)
        assert_error(response, ErrorCode.UNAUTHORIZED)
        assert response.status_code == 401


async def test_a_revoked_token_is_401_token_revoked(
    server: ServerProcess, http: httpx.AsyncClient, alice: Client
) -> None:
    second = await second_device(server.url, alice.test_phone)  # type: ignore[attr-defined]
    headers = bearer(second)
    await second.close()
    assert (await http.post("/api/users.me", headers=headers)).status_code == 200

    await alice.revoke_device(device_id_of(second))

    response = await http.post("/api/users.me", headers=headers)
    assert_error(response, ErrorCode.TOKEN_REVOKED)
    assert response.status_code == 401
    assert (await http.post("/api/users.me", headers=bearer(alice))).status_code == 200


async def test_a_stranger_gets_404_and_a_non_author_403(
    server: ServerProcess, http: httpx.AsyncClient, alice: Client, bob: Client
) -> None:
    chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    sent = await alice.call(
        "messages.send", chat_id=chat_id, text="original", random_id=secrets.randbits(62)
    )
    message_id = sent["message"]["id"]
    history = await alice.call("messages.history", chat_id=chat_id)
    stranger_phone, code = new_test_phone()
    await http.post("/api/auth.send_code", json={"phone": stranger_phone})
    signed = await http.post("/api/auth.sign_in", json={"phone": stranger_phone, "code": code})
    stranger = {"Authorization": f"Bearer {signed.json()['token']}"}

    response = await http.post("/api/messages.history", headers=stranger, json={"chat_id": chat_id})
    assert_error(response, ErrorCode.CHAT_NOT_FOUND)
    assert response.status_code == 404
    response = await http.post(
        "/api/messages.edit",
        headers=bearer(bob),
        json={"chat_id": chat_id, "message_id": message_id, "text": "forged"},
    )
    assert_error(response, ErrorCode.NOT_AUTHOR)
    assert response.status_code == 403
    assert await alice.call("messages.history", chat_id=chat_id) == history


async def test_an_oversize_body_is_413_whether_declared_or_streamed(
    http: httpx.AsyncClient, alice: Client
) -> None:
    body = b'{"peer": "' + BIG.encode() + b'"}'
    declared = await http.post(
        "/api/users.resolve",
        content=body,
        headers={**bearer(alice), "content-type": "application/json"},
    )
    assert_error(declared, ErrorCode.PAYLOAD_TOO_LARGE)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = await http.post(
        "/api/users.resolve",
        content=chunks(),
        headers={**bearer(alice), "content-type": "application/json"},
    )
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, ErrorCode.PAYLOAD_TOO_LARGE)
    assert (await http.post("/api/users.me", headers=bearer(alice))).status_code == 200


async def test_openapi_documents_every_http_method_with_its_request_body(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    components = schema["components"]["schemas"]
    documented = {path for path in schema["paths"] if path.startswith("/api/")}
    expected = {f"/api/{spec.name}" for spec in METHODS.values() if spec.http}
    assert documented == expected
    assert "/api/auth.authorize" not in documented  # WebSocket only

    for spec in METHODS.values():
        if not spec.http:
            continue
        operation = schema["paths"][f"/api/{spec.name}"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].removeprefix("#/components/schemas/")
        params = components[name]
        assert set(params.get("properties", {})) == set(spec.params.model_fields), spec.name
        assert set(params.get("required", [])) == {
            field for field, info in spec.params.model_fields.items() if info.is_required()
        }, spec.name
        assert params.get("additionalProperties") is False, spec.name
        assert ("security" in operation) == spec.needs_device, spec.name
        assert "200" in operation["responses"], spec.name
    assert components["SendMessageParams"]["properties"]["text"]["maxLength"] == 4096


# --- HTTP 429 ---------------------------------------------------------------------------------
# Rate limits are node memory, not storage: one backend is enough.

HTTP_FLOOD_LIMITS = """
[limits]
requests_per_second = 5
request_burst = 10
auth_per_ip_per_minute = 100000
codes_per_phone_per_hour = 1000
"""


@pytest.fixture(scope="module")
def http_flood_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("http-flood"), extra_config=HTTP_FLOOD_LIMITS)
    proc.start()
    yield proc
    proc.cleanup()


async def test_flooding_over_http_is_429_with_retry_after(
    http_flood_server: ServerProcess,
) -> None:
    url = http_flood_server.url
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        phone, code = new_test_phone()
        await http.post("/api/auth.send_code", json={"phone": phone})
        signed = await http.post("/api/auth.sign_in", json={"phone": phone, "code": code})
        headers = {"Authorization": f"Bearer {signed.json()['token']}"}

        statuses = [(await http.post("/api/users.me", headers=headers)) for _ in range(30)]

        assert {r.status_code for r in statuses} == {200, 429}
        refused = [r for r in statuses if r.status_code == 429]
        error = assert_error(refused[-1], ErrorCode.FLOOD_WAIT)
        assert 0 < error["retry_after"] <= 1
        assert (await http.get("/health")).status_code == 200
        await asyncio.sleep(error["retry_after"] + 0.05)
        assert (await http.post("/api/users.me", headers=headers)).status_code == 200
