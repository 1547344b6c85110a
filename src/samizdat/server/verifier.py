"""Choosing login codes and delivering them to phones.

``CodeIssuer`` decides which code a phone gets and whether anything is sent:

================  ========================  ==================================================
number            dev mode                  otherwise
================  ========================  ==================================================
test (+99966...)  ``test_code``, not sent   AuthError PHONE_NUMBER_REFUSED
real              random, sent via Verifier random, sent via Verifier
================  ========================  ==================================================

A real number with no Verifier configured raises Unavailable: the server never pretends to have
sent a code. ``Verifier`` is the port; ``WebhookVerifier`` is the adapter that hands the code
to an SMS gateway over HTTP. Neither the code nor the phone number is ever logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

import httpx

from samizdat.core.login_codes import CodePolicy, generate_code
from samizdat.core.phone import Phone, test_code
from samizdat.protocol.errors import AuthError, ErrorCode, Unavailable


class Verifier(Protocol):
    """Delivers a login code to a phone; raises Unavailable if it cannot."""

    async def deliver(self, phone: Phone, code: str) -> None: ...

    async def aclose(self) -> None:
        """Release connections; called once at server shutdown."""
        ...


class CodeIssuer:
    """Decides the login code for a phone and has it delivered (see the module docstring).

    ``randbelow`` is ``secrets.randbelow`` except in tests that need a known code.
    """

    def __init__(
        self,
        verifier: Verifier | None,
        *,
        dev_mode: bool,
        policy: CodePolicy | None = None,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self._verifier = verifier
        self._dev_mode = dev_mode
        self._length = (policy or CodePolicy()).length
        self._randbelow = randbelow

    async def aclose(self) -> None:
        if self._verifier is not None:
            await self._verifier.aclose()

    async def issue(self, phone: Phone) -> str:
        """Return the code ``phone`` must present, after it has been delivered.

        The caller stores only the code's digest. If delivery fails nothing should be stored,
        so the user simply asks again.

        Raises:
            AuthError: PHONE_NUMBER_REFUSED for a test number outside dev mode.
            Unavailable: no verifier is configured, or it could not deliver the code.
        """
        if phone.is_test:
            if not self._dev_mode:
                raise AuthError(
                    "test numbers are accepted only in dev mode",
                    code=ErrorCode.PHONE_NUMBER_REFUSED,
                )
            return test_code(phone)
        if self._verifier is None:
            raise Unavailable("no SMS verifier is configured; set verifier.webhook_url")
        code = generate_code(self._length, self._randbelow)
        await self._verifier.deliver(phone, code)
        return code


class WebhookVerifier:
    """Delivers codes by POSTing ``{"phone", "code", "purpose": "login"}`` JSON to an SMS gateway.

    Any 2xx answer means the gateway accepted the code; anything else, a network error or a
    timeout after ``timeout`` seconds raises Unavailable. Pass a shared ``client`` to reuse
    connections (the caller then closes it); otherwise this verifier owns one and ``aclose``
    (or ``async with``) releases it. Redirects are not followed.
    """

    def __init__(
        self, url: str, timeout: float = 5.0, client: httpx.AsyncClient | None = None
    ) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError("verifier webhook URL must be http or https")
        self._url = url
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    async def deliver(self, phone: Phone, code: str) -> None:
        payload = {"phone": phone.e164, "code": code, "purpose": "login"}
        try:
            # Streaming lets us skip reading whatever body the gateway answers with.
            async with self._client.stream(
                "POST", self._url, json=payload, timeout=self._timeout, follow_redirects=False
            ) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            raise Unavailable(
                "the SMS gateway did not accept the code; try again later",
                debug_context={"error": type(exc).__name__},
            ) from exc
        if not 200 <= status < 300:
            # Not raise_for_status(): its message carries the URL, which may hold a token.
            raise Unavailable(
                "the SMS gateway did not accept the code; try again later",
                debug_context={"status": status},
            )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = ["CodeIssuer", "Verifier", "WebhookVerifier"]
