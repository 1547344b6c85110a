"""How a node reaches a custodian: one port, an in-process adapter and an HTTP adapter.

The in-process adapter is what ``samizdat serve`` uses on its embedded defaults; it goes
through the same JSON models as HTTP, so both paths parse and check exactly the same bytes.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.protocol import (
    Answer,
    CustodianInfo,
    Refused,
    SignedDisclose,
    SignedUnseal,
)
from samizdat.custody.service import Custodian

M = TypeVar("M", bound=BaseModel)


class CustodianUnreachable(Exception):
    """No answer (network, timeout, a server error, or an answer that does not parse)."""


class CustodianClient(Protocol):
    custodian_id: str

    async def unseal(self, signed: SignedUnseal) -> Answer:
        """The custodian's signed answer; raises Refusal or CustodianUnreachable."""
        ...

    async def disclose(self, signed: SignedDisclose) -> Answer:
        """The custodian's signed answer; raises Refusal or CustodianUnreachable."""
        ...

    async def info(self) -> CustodianInfo: ...

    async def aclose(self) -> None: ...


class InProcessCustodianClient:
    """A custodian living in this process (embedded defaults and tests)."""

    def __init__(self, custodian: Custodian, *, reachable: bool = True) -> None:
        self.custodian = custodian
        self.custodian_id = custodian.identity.custodian_id
        #: Tests (and ``status``) switch this off to play a custodian that is down.
        self.reachable = reachable

    def _check(self) -> None:
        if not self.reachable:
            raise CustodianUnreachable(f"custodian {self.custodian_id} is not answering")

    async def unseal(self, signed: SignedUnseal) -> Answer:
        self._check()
        wire = SignedUnseal.model_validate_json(signed.model_dump_json())
        return self.custodian.unseal(wire)

    async def disclose(self, signed: SignedDisclose) -> Answer:
        self._check()
        wire = SignedDisclose.model_validate_json(signed.model_dump_json())
        return self.custodian.disclose(wire)

    async def info(self) -> CustodianInfo:
        self._check()
        return self.custodian.info()

    async def aclose(self) -> None:
        return None


class HttpCustodianClient:
    """A custodian service at ``url`` (``samizdat custodian serve``)."""

    def __init__(self, custodian_id: str, url: str, *, timeout: float = 5.0) -> None:
        self.custodian_id = custodian_id
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)

    async def _post(self, path: str, body: bytes) -> Answer:
        response = await self._call("POST", path, body)
        return self._parse(Answer, response)

    async def _call(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                self.url + path,
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CustodianUnreachable(
                f"custodian {self.custodian_id} at {self.url}: {type(exc).__name__}"
            ) from exc
        if response.status_code in (400, 403):
            refused = self._parse(Refused, response)
            try:
                code = RefusalCode(refused.code)
            except ValueError:
                code = RefusalCode.MALFORMED
            raise Refusal(code, refused.message)
        if response.status_code != 200:
            raise CustodianUnreachable(
                f"custodian {self.custodian_id} answered HTTP {response.status_code}"
            )
        return response

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CustodianUnreachable(
                f"custodian {self.custodian_id} sent an answer that does not parse"
            ) from exc

    async def unseal(self, signed: SignedUnseal) -> Answer:
        return await self._post("/v1/unseal", signed.model_dump_json().encode())

    async def disclose(self, signed: SignedDisclose) -> Answer:
        return await self._post("/v1/disclose", signed.model_dump_json().encode())

    async def info(self) -> CustodianInfo:
        return self._parse(CustodianInfo, await self._call("GET", "/v1/info"))

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = [
    "CustodianClient",
    "CustodianUnreachable",
    "HttpCustodianClient",
    "InProcessCustodianClient",
]
