"""The secret-chat vault: state survives a restart with the passphrase, and nothing without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samizdat.crypto.e2ee import DeviceCrypto, OlmSessions
from samizdat.crypto.vault import KdfCost, Vault, VaultLocked

FAST = KdfCost(time_cost=1, memory_kib=8 * 1024, parallelism=1)  # tests only


def pair() -> tuple[DeviceCrypto, OlmSessions, DeviceCrypto, OlmSessions, str]:
    alice, bob = DeviceCrypto.create(1), DeviceCrypto.create(2)
    alice_sessions, bob_sessions = OlmSessions(alice), OlmSessions(bob)
    (key,) = bob.new_one_time_keys(1)
    first = alice_sessions.encrypt(bob.identity_key, key["key"], b"first")
    assert bob_sessions.decrypt(alice.identity_key, **first) == b"first"
    return alice, alice_sessions, bob, bob_sessions, "correct horse battery staple"


def test_a_restored_device_keeps_its_identity_and_its_sessions(tmp_path: Path) -> None:
    alice, alice_sessions, bob, bob_sessions, passphrase = pair()
    Vault(tmp_path, passphrase, cost=FAST).save(bob, bob_sessions)
    loaded = Vault(tmp_path, passphrase, cost=FAST).load()
    assert loaded is not None
    restored, restored_sessions = loaded
    assert (restored.identity_key, restored.signing_key, restored.device_id) == (
        bob.identity_key,
        bob.signing_key,
        2,
    )
    later = alice_sessions.encrypt(bob.identity_key, None, b"after the restart")
    assert restored_sessions.decrypt(alice.identity_key, **later) == b"after the restart"


def test_the_vault_holds_no_plaintext_keys_or_messages(tmp_path: Path) -> None:
    _, _, bob, bob_sessions, passphrase = pair()
    vault = Vault(tmp_path, passphrase, cost=FAST)
    vault.save(bob, bob_sessions)
    raw = vault.path.read_bytes()
    assert b"first" not in raw
    assert bob.identity_key.encode() not in raw
    assert oct(vault.path.stat().st_mode & 0o777) == "0o600"


def test_a_wrong_passphrase_or_an_altered_file_opens_nothing(tmp_path: Path) -> None:
    _, _, bob, bob_sessions, passphrase = pair()
    Vault(tmp_path, passphrase, cost=FAST).save(bob, bob_sessions)
    with pytest.raises(VaultLocked):
        Vault(tmp_path, "wrong passphrase", cost=FAST).load()
    stored = json.loads((tmp_path / "e2ee.vault").read_text())
    stored["t"] = 2  # a weakened cost in the header must not go unnoticed
    (tmp_path / "e2ee.vault").write_text(json.dumps(stored))
    with pytest.raises(VaultLocked):
        Vault(tmp_path, passphrase, cost=FAST).load()


def test_no_vault_is_no_state(tmp_path: Path) -> None:
    assert Vault(tmp_path, "anything", cost=FAST).load() is None
