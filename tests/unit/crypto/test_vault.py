"""The secret-chat vault: state survives a restart with the passphrase (or the OS keyring's
key), and nothing opens without it; a weakened header, a damaged file or sections swapped
between names are refused, and no plaintext ever reaches the disk."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from samizdat.crypto.secret_keys import SecretKeys
from samizdat.crypto.vault import (
    DEVICE_SECTION,
    HEADER_FILE,
    KEYRING_SERVICE,
    KdfCost,
    Vault,
    VaultLocked,
)
from samizdat.protocol.errors import AuthError, ErrorCode

FAST = KdfCost(time_cost=1, memory_kib=8 * 1024, parallelism=1)  # tests only
PASSPHRASE = "correct horse battery staple"
SECRET = b"attack at dawn, bring the plans"


class MemoryKeyring:
    """An OS keyring in a dict (the ``KeyringBackend`` protocol)."""

    def __init__(self) -> None:
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.passwords.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.passwords[(service_name, username)] = password


def new_vault(directory: Path) -> Vault:
    return Vault.open(directory, PASSPHRASE, cost=FAST)


def header(directory: Path) -> dict[str, object]:
    loaded = json.loads((directory / HEADER_FILE).read_text())
    assert isinstance(loaded, dict)
    return loaded


def rewrite_header(directory: Path, **changes: object) -> None:
    (directory / HEADER_FILE).write_text(json.dumps({**header(directory), **changes}))


# Passphrase


def test_a_vault_reopened_with_its_passphrase_reads_what_was_written(tmp_path: Path) -> None:
    assert not Vault.exists(tmp_path)
    new_vault(tmp_path).write("notes", SECRET)
    assert Vault.exists(tmp_path)
    assert Vault.open(tmp_path, PASSPHRASE).read("notes") == SECRET


def test_the_header_records_the_cost_the_vault_was_made_with(tmp_path: Path) -> None:
    new_vault(tmp_path)
    stored = header(tmp_path)
    assert (stored["kdf"], stored["t"], stored["m"], stored["p"]) == ("argon2id", 1, 8192, 1)


def test_the_default_cost_is_rfc_9106s_second_recommendation() -> None:
    assert KdfCost() == KdfCost(time_cost=3, memory_kib=64 * 1024, parallelism=1)


def test_a_wrong_passphrase_is_locked_out(tmp_path: Path) -> None:
    new_vault(tmp_path).write("notes", SECRET)
    with pytest.raises(VaultLocked, match="wrong passphrase") as caught:
        Vault.open(tmp_path, "Correct horse battery staple")
    assert isinstance(caught.value, AuthError)
    assert caught.value.code is ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize(
    "changes",
    [{"t": 2}, {"m": 16 * 1024}, {"p": 2}, {"salt": base64.b64encode(b"s" * 16).decode()}],
    ids=["time-cost", "memory-cost", "parallelism", "salt"],
)
def test_an_edited_header_is_locked_out(tmp_path: Path, changes: dict[str, object]) -> None:
    new_vault(tmp_path)
    rewrite_header(tmp_path, **changes)
    with pytest.raises(VaultLocked):
        Vault.open(tmp_path, PASSPHRASE)


def test_a_header_whose_cost_was_weakened_is_locked_out(tmp_path: Path) -> None:
    strong = KdfCost(time_cost=2, memory_kib=8 * 1024, parallelism=1)
    Vault.open(tmp_path, PASSPHRASE, cost=strong).write("notes", SECRET)
    rewrite_header(tmp_path, t=1)
    with pytest.raises(VaultLocked, match="header was altered"):
        Vault.open(tmp_path, PASSPHRASE)


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"v": 2}', b'{"v": 1, "check": "AAAA"}', b'{"check": "!"}'],
    ids=["empty", "not-json", "a-list", "no-check", "old-version", "bad-check"],
)
def test_a_damaged_header_is_locked_out(tmp_path: Path, content: bytes) -> None:
    (tmp_path / HEADER_FILE).write_bytes(content)
    with pytest.raises(VaultLocked):
        Vault.open(tmp_path, PASSPHRASE)


def test_a_header_with_unreadable_cost_fields_is_locked_out(tmp_path: Path) -> None:
    new_vault(tmp_path)
    rewrite_header(tmp_path, t="three")
    with pytest.raises(VaultLocked, match="damaged"):
        Vault.open(tmp_path, PASSPHRASE)


@pytest.mark.parametrize(
    "changes",
    [{"t": 0}, {"m": 1}, {"p": 0}, {"salt": ""}],
    ids=["time-cost-0", "memory-cost-1", "parallelism-0", "empty-salt"],
)
def test_a_header_with_a_cost_argon2_refuses_is_locked_out(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    new_vault(tmp_path)
    rewrite_header(tmp_path, **changes)
    with pytest.raises(VaultLocked):
        Vault.open(tmp_path, PASSPHRASE)


# Sections


def test_a_section_never_written_reads_as_none(tmp_path: Path) -> None:
    assert new_vault(tmp_path).read("nothing_here") is None


def test_a_section_is_overwritten_and_removed(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.write("notes", b"one")
    vault.write("notes", b"two")
    assert vault.read("notes") == b"two"
    vault.remove("notes")
    vault.remove("notes")  # removing a missing section is fine
    assert vault.read("notes") is None


def test_an_empty_section_is_not_a_missing_one(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.write("empty", b"")
    assert vault.read("empty") == b""


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "has space", "1starts_with_digit"])
def test_a_section_name_that_is_not_an_identifier_is_refused(tmp_path: Path, name: str) -> None:
    vault = new_vault(tmp_path)
    with pytest.raises(ValueError, match="section name"):
        vault.write(name, b"x")
    with pytest.raises(ValueError, match="section name"):
        vault.read(name)


def test_a_section_copied_over_another_sections_file_is_locked_out(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.write("alpha", b"alpha's data")
    vault.write("beta", b"beta's data")
    alpha, beta = tmp_path / "alpha.sealed", tmp_path / "beta.sealed"
    alpha_bytes, beta_bytes = alpha.read_bytes(), beta.read_bytes()
    alpha.write_bytes(beta_bytes)
    beta.write_bytes(alpha_bytes)
    with pytest.raises(VaultLocked, match="'alpha'"):
        vault.read("alpha")
    with pytest.raises(VaultLocked, match="'beta'"):
        vault.read("beta")


def test_a_section_from_another_vault_with_the_same_passphrase_is_locked_out(
    tmp_path: Path,
) -> None:
    mine, theirs = new_vault(tmp_path / "mine"), new_vault(tmp_path / "theirs")
    theirs.write("notes", b"theirs")
    mine.write("notes", b"mine")
    (tmp_path / "mine" / "notes.sealed").write_bytes(
        (tmp_path / "theirs" / "notes.sealed").read_bytes()
    )
    with pytest.raises(VaultLocked):
        mine.read("notes")


def test_every_flipped_byte_in_a_section_is_locked_out(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.write("notes", SECRET)
    path = tmp_path / "notes.sealed"
    original = path.read_bytes()
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(VaultLocked, match="altered or damaged"):
            vault.read("notes")
    path.write_bytes(original)
    assert vault.read("notes") == SECRET


@pytest.mark.parametrize("length", [0, 5, 12, 27])
def test_a_truncated_section_is_locked_out(tmp_path: Path, length: int) -> None:
    vault = new_vault(tmp_path)
    vault.write("notes", SECRET)
    path = tmp_path / "notes.sealed"
    path.write_bytes(path.read_bytes()[:length])
    with pytest.raises(VaultLocked):
        vault.read("notes")


def test_files_are_owner_only_and_hold_no_plaintext(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    keys = SecretKeys.create(device_id=4)
    vault.write("notes", SECRET)
    vault.save_device(keys, b'{"state": "' + SECRET + b'"}')
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["device.sealed", "notes.sealed", HEADER_FILE]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        raw = path.read_bytes()
        assert SECRET not in raw, path.name
        assert b"attack" not in raw, path.name
        assert PASSPHRASE.encode() not in raw, path.name
        assert keys.identity_key.encode() not in raw, path.name


def test_a_new_vault_directory_is_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "vault"
    new_vault(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


# The device section


def test_a_new_vault_has_no_device(tmp_path: Path) -> None:
    assert new_vault(tmp_path).load_device() is None


def test_a_saved_device_comes_back_with_its_keys_and_state(tmp_path: Path) -> None:
    keys = SecretKeys.create(device_id=9)
    original = keys.new_outbound("group", now=1.0)
    state = b'{"chats": {}, "n": 17}'
    new_vault(tmp_path).save_device(keys, state)

    loaded = Vault.open(tmp_path, PASSPHRASE).load_device()

    assert loaded is not None
    restored, restored_state = loaded
    assert restored_state == state
    assert (restored.identity_key, restored.device.signing_key, restored.device.device_id) == (
        keys.identity_key,
        keys.device.signing_key,
        9,
    )
    outbound = restored.outbound("group")
    assert outbound is not None
    assert outbound.session_id == original.session_id


def test_a_device_saved_with_empty_state_keeps_it_empty(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.save_device(SecretKeys.create(device_id=1), b"")
    loaded = vault.load_device()
    assert loaded is not None
    assert loaded[1] == b""


def test_a_device_section_holding_no_keys_is_locked_out(tmp_path: Path) -> None:
    vault = new_vault(tmp_path)
    vault.write(DEVICE_SECTION, (5).to_bytes(4, "big") + b"hello world")
    with pytest.raises(VaultLocked, match="keys in the vault are damaged"):
        vault.load_device()


def test_a_device_section_from_a_wrong_passphrase_opens_nothing(tmp_path: Path) -> None:
    new_vault(tmp_path).save_device(SecretKeys.create(device_id=1), b"state")
    with pytest.raises(VaultLocked):
        Vault.open(tmp_path, "guess").load_device()


# The OS keyring


def test_a_keyring_vault_reopens_with_the_same_keyring(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    Vault.open_with_keyring(tmp_path, keyring).write("notes", SECRET)
    ((service, username),) = keyring.passwords
    assert service == KEYRING_SERVICE
    assert username == header(tmp_path)["id"]
    assert len(base64.b64decode(keyring.passwords[(service, username)])) == 32
    assert Vault.open_with_keyring(tmp_path, keyring).read("notes") == SECRET


def test_the_keyring_vaults_header_holds_no_key(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    Vault.open_with_keyring(tmp_path, keyring)
    (key,) = keyring.passwords.values()
    assert key.encode() not in (tmp_path / HEADER_FILE).read_bytes()
    assert header(tmp_path)["kdf"] == "keyring"


def test_a_keyring_without_the_key_is_locked_out(tmp_path: Path) -> None:
    Vault.open_with_keyring(tmp_path, MemoryKeyring())
    with pytest.raises(VaultLocked, match="holds no key"):
        Vault.open_with_keyring(tmp_path, MemoryKeyring())


def test_a_keyring_with_another_key_is_locked_out(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    Vault.open_with_keyring(tmp_path, keyring)
    (entry,) = keyring.passwords
    keyring.passwords[entry] = base64.b64encode(b"k" * 32).decode()
    with pytest.raises(VaultLocked, match="does not fit"):
        Vault.open_with_keyring(tmp_path, keyring)


def test_a_keyring_key_that_is_not_base64_is_locked_out(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    Vault.open_with_keyring(tmp_path, keyring)
    (entry,) = keyring.passwords
    keyring.passwords[entry] = "not base64!"
    with pytest.raises(VaultLocked, match="damaged"):
        Vault.open_with_keyring(tmp_path, keyring)


def test_a_keyring_key_of_the_wrong_length_is_locked_out(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    Vault.open_with_keyring(tmp_path, keyring)
    (entry,) = keyring.passwords
    keyring.passwords[entry] = base64.b64encode(b"short").decode()
    with pytest.raises(VaultLocked):
        Vault.open_with_keyring(tmp_path, keyring)


def test_a_passphrase_vault_does_not_open_with_the_keyring(tmp_path: Path) -> None:
    new_vault(tmp_path)
    keyring = MemoryKeyring()
    with pytest.raises(VaultLocked, match="unlocked by a passphrase, not the OS keyring"):
        Vault.open_with_keyring(tmp_path, keyring)
    assert keyring.passwords == {}  # and no key was made for it


def test_a_keyring_vault_does_not_open_with_a_passphrase(tmp_path: Path) -> None:
    Vault.open_with_keyring(tmp_path, MemoryKeyring())
    with pytest.raises(VaultLocked, match="unlocked by the OS keyring, not a passphrase"):
        Vault.open(tmp_path, PASSPHRASE)


def test_a_vault_says_how_it_is_unlocked(tmp_path: Path) -> None:
    assert not Vault.uses_keyring(tmp_path / "none")
    Vault.open(tmp_path / "pass", PASSPHRASE, cost=FAST)
    assert not Vault.uses_keyring(tmp_path / "pass")
    Vault.open_with_keyring(tmp_path / "ring", MemoryKeyring())
    assert Vault.uses_keyring(tmp_path / "ring")
    (tmp_path / "pass" / "vault.json").write_text("not json")
    with pytest.raises(VaultLocked):
        Vault.uses_keyring(tmp_path / "pass")


def test_only_section_name_prefixes_can_be_removed(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path, PASSPHRASE, cost=FAST)
    vault.write("h_a_0", b"x")
    vault.write("h_b_0", b"y")
    vault.remove_matching("h_a_")
    assert vault.read("h_a_0") is None
    assert vault.read("h_b_0") == b"y"
    with pytest.raises(ValueError, match="prefix"):
        vault.remove_matching("../")
