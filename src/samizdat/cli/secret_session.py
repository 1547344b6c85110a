"""Unlocking the secret-chat vault for a command, and the engine around a logged-in client.

The vault lives in ``PROFILE/secret``. Its key comes from a passphrase (``SAMIZDAT_PASSPHRASE``,
or asked on the terminal; twice when the vault is new) or, if the vault was created with
``--keyring``, from the operating system's keyring. There is no way around it: without the
passphrase the secret history is gone, by design.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from samizdat.cli.session import load_session
from samizdat.client import Client
from samizdat.client.secret import KnownDevice, SecretChats
from samizdat.crypto.vault import Vault, VaultLocked
from samizdat.protocol.errors import ErrorCode

PASSPHRASE_ENV = "SAMIZDAT_PASSPHRASE"
VAULT_DIR = "secret"
MIN_PASSPHRASE = 8


def vault_dir(profile: Path) -> Path:
    return profile / VAULT_DIR


def _locked(message: str) -> VaultLocked:
    return VaultLocked(message, code=ErrorCode.UNAUTHORIZED)


def _passphrase(new: bool) -> str:
    given = os.environ.get(PASSPHRASE_ENV)
    if given is not None:
        if new and len(given) < MIN_PASSPHRASE:
            raise _locked(
                f"{PASSPHRASE_ENV} is too short: use at least {MIN_PASSPHRASE} characters"
            )
        return given
    if not sys.stdin.isatty():
        raise _locked(
            f"the secret-chat vault needs its passphrase: set {PASSPHRASE_ENV}, run the command "
            "in a terminal, or create the vault with --keyring"
        )
    if not new:
        return getpass.getpass("Secret-chat passphrase: ")
    print(
        "Secret chats keep their keys and history in a vault sealed with a passphrase.\n"
        "If you lose it, secret history is lost: nobody (not the server) can recover it.",
        file=sys.stderr,
    )
    first = getpass.getpass("New secret-chat passphrase: ")
    if len(first) < MIN_PASSPHRASE:
        raise _locked(f"use at least {MIN_PASSPHRASE} characters")
    if getpass.getpass("Again: ") != first:
        raise _locked("the two passphrases differ; nothing was created")
    return first


def open_vault(profile: Path, *, keyring: bool = False) -> Vault:
    """The profile's vault: an existing one the way it was made, a new one with a
    passphrase or (``keyring``) a key in the OS keyring."""
    directory = vault_dir(profile)
    exists = Vault.exists(directory)
    if (exists and Vault.uses_keyring(directory)) or (not exists and keyring):
        import keyring as os_keyring
        from keyring.errors import KeyringError

        try:
            return Vault.open_with_keyring(directory, os_keyring.get_keyring())
        except KeyringError as exc:
            raise _locked(
                "no usable OS keyring here (Secret Service, macOS Keychain or Windows "
                "Credential Locker); create the vault with a passphrase instead"
            ) from exc
    return Vault.open(directory, _passphrase(new=not exists))


Confirm = Callable[[list[KnownDevice]], Awaitable[bool]]


@asynccontextmanager
async def secret_chats(
    profile: Path,
    *,
    keyring: bool = False,
    confirm: Confirm | None = None,
    receive_updates: bool = False,
    **engine: Any,
) -> AsyncIterator[SecretChats]:
    """A logged-in client with its secret chats open (waiting messages decrypted)."""
    vault = open_vault(profile, keyring=keyring)
    session = load_session(profile)
    client = Client(
        session=session,
        profile=profile if receive_updates else None,
        receive_updates=receive_updates,
    )
    async with client:
        secret = SecretChats(client, vault, confirm_new_devices=confirm, **engine)
        await secret.open()
        try:
            yield secret
        finally:
            await secret.close()


__all__ = ["PASSPHRASE_ENV", "VAULT_DIR", "open_vault", "secret_chats", "vault_dir"]
