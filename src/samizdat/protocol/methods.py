"""Every RPC method: its name, parameter model, result model and whether it needs a device.

The same table drives the WebSocket dispatcher, the HTTP routes (``POST /api/<method>``),
OpenAPI, the SDK and the fuzz tests, so a method is declared exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from samizdat.protocol.models import (
    Chat,
    Device,
    Dialog,
    Message,
    NumberedUpdate,
    PhoneVisibility,
    SecretMessageUpdate,
    User,
)

MAX_TEXT_LENGTH = 4096
MAX_TITLE_LENGTH = 128
MAX_BATCH_IDS = 100
MAX_HISTORY_LIMIT = 200
MAX_DIFFERENCE_LIMIT = 1000
MAX_GROUP_MEMBERS = 10_000

# Strings stored as plain text columns may not hold NUL: PostgreSQL refuses it (SQLite would
# not), so it is refused here and both backends answer alike. Message text is sealed to bytes
# before it is stored, so it may hold any character.
_NO_NUL = r"^[^\x00]*$"

Id = Annotated[int, Field(ge=1, lt=2**53)]
#: Offsets and update numbers: non-negative, and like ids below 2**53 (they fit a BIGINT).
Count = Annotated[int, Field(ge=0, lt=2**53)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH)]
Title = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TITLE_LENGTH, pattern=_NO_NUL)
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NO_NUL)]
DeviceName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NO_NUL)]
RandomId = Annotated[int, Field(ge=-(2**63), lt=2**63)]
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=_NO_NUL)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Empty(Params):
    pass


class Ok(Result):
    ok: bool = True


# --- auth ---------------------------------------------------------------------------------
class SendCodeParams(Params):
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)]


class SendCodeResult(Result):
    expires_in: int
    code_length: int


class SignInParams(Params):
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    device_name: DeviceName = "device"
    display_name: DisplayName | None = None


class SignInResult(Result):
    token: str = Field(description="256-bit device token; shown once, store it safely")
    device_id: int
    user: User
    new_user: bool


class AuthorizeParams(Params):
    token: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AuthorizeResult(Result):
    user: User
    device_id: int
    seq: int


# --- profile and users --------------------------------------------------------------------
class UpdateProfileParams(Params):
    display_name: DisplayName | None = None
    # Not strict: parameters arrive as JSON, where an enum can only be its string value.
    phone_visibility: Annotated[PhoneVisibility, Field(strict=False)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None,
        description="Your own number, sent with a visibility other than nobody: the server "
        "keeps no readable copy otherwise",
    )


class SetUsernameParams(Params):
    username: Annotated[str, StringConstraints(max_length=64)] | None


class ResolveParams(Params):
    peer: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="@username or +phone"
    )


class UserIdParams(Params):
    user_id: Id


class ContactsResult(Result):
    users: list[User]


# --- devices ------------------------------------------------------------------------------
class DevicesResult(Result):
    devices: list[Device]


class RevokeDeviceParams(Params):
    device_id: Id


class RevokeOthersResult(Result):
    revoked: int


# --- chats and groups ---------------------------------------------------------------------
class OpenPrivateParams(Params):
    user_id: Id


class CreateGroupParams(Params):
    title: Title
    member_ids: Annotated[list[Id], Field(max_length=MAX_BATCH_IDS)] = Field(default_factory=list)


class ChatIdParams(Params):
    chat_id: Id


class AddMembersParams(Params):
    chat_id: Id
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH_IDS)]


class RemoveMemberParams(Params):
    chat_id: Id
    user_id: Id


class RenameParams(Params):
    chat_id: Id
    title: Title


class SetAdminParams(Params):
    chat_id: Id
    user_id: Id
    admin: bool


class MembersParams(Params):
    chat_id: Id
    offset: Count = 0
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY_LIMIT)] = 100


class MembersResult(Result):
    user_ids: list[int]
    total: int


# --- messages -----------------------------------------------------------------------------
class SendMessageParams(Params):
    chat_id: Id
    text: Text
    random_id: RandomId
    reply_to_id: Id | None = None


class SentResult(Result):
    message: Message
    seq: int


class ForwardParams(Params):
    from_chat_id: Id
    message_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH_IDS)]
    to_chat_id: Id
    random_id: RandomId


class ForwardResult(Result):
    messages: list[Message]
    seq: int


class EditParams(Params):
    chat_id: Id
    message_id: Id
    text: Text


class DeleteParams(Params):
    chat_id: Id
    message_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH_IDS)]
    for_everyone: bool = False


class ReactParams(Params):
    chat_id: Id
    message_id: Id
    emoji: Emoji | None = Field(None, description="None removes your reaction")


class ReadParams(Params):
    chat_id: Id
    max_id: Id


class SeqResult(Result):
    seq: int | None = Field(
        description="The number of the update your change made, or null if it changed nothing"
    )


class HistoryParams(Params):
    chat_id: Id
    before_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY_LIMIT)] = 50


class HistoryResult(Result):
    messages: list[Message] = Field(description="Newest first")


class DialogsParams(Params):
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY_LIMIT)] = 100


class DialogsResult(Result):
    dialogs: list[Dialog]


# --- updates ------------------------------------------------------------------------------
class StateResult(Result):
    seq: int


class DifferenceParams(Params):
    since: Count
    limit: Annotated[int, Field(ge=1, le=MAX_DIFFERENCE_LIMIT)] = 500


class DifferenceResult(Result):
    updates: list[NumberedUpdate]
    seq: int = Field(description="Your newest update number")
    more: bool = Field(description="True when limit cut the list; ask again from the last seq")


# --- end-to-end keys ----------------------------------------------------------------------
MAX_ONE_TIME_KEYS_PER_UPLOAD = 100
KeyText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SignatureText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
KeyId = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9+/=_-]+$")
]


class SignedKey(Params):
    key_id: KeyId
    key: KeyText = Field(description="Curve25519 public key, unpadded base64")
    signature: SignatureText = Field(description="Ed25519 signature by the device's signing key")


class UploadKeysParams(Params):
    identity_key: KeyText = Field(description="the device's Curve25519 key, unpadded base64")
    signing_key: KeyText = Field(description="the device's Ed25519 key, unpadded base64")
    signature: SignatureText = Field(description="signing_key's signature of the device keys")
    one_time_keys: Annotated[list[SignedKey], Field(max_length=MAX_ONE_TIME_KEYS_PER_UPLOAD)] = (
        Field(default_factory=list)
    )
    fallback_key: SignedKey | None = None


class KeyCountResult(Result):
    one_time_key_count: int
    fallback_key: bool = Field(description="An unused fallback key is held (false: upload one)")


class QueryKeysParams(Params):
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH_IDS)]


class PublishedDeviceKeys(Result):
    user_id: int
    device_id: int
    identity_key: str
    signing_key: str
    signature: str


class QueryKeysResult(Result):
    devices: list[PublishedDeviceKeys]


class ClaimKeysParams(Params):
    device_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH_IDS)]


class ClaimedKey(Result):
    device_id: int
    key_id: str
    key: str
    signature: str
    fallback: bool


class ClaimKeysResult(Result):
    keys: list[ClaimedKey] = Field(description="One per device that has a key to give")


# --- secret (end-to-end encrypted) messages ---------------------------------------------
#: One device's ciphertext: far above a 4,096-character message with Olm's overhead, and under
#: the 64 KiB frame limit (a client splits sends to many devices over several frames).
MAX_CIPHERTEXT_CHARS = 32 * 1024
#: Devices one group ciphertext may be addressed to in one request: 1,000 ids keep the frame
#: under the 64 KiB limit; a client splits a larger fan-out over several requests.
MAX_SECRET_FANOUT = 1000
Ciphertext = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CIPHERTEXT_CHARS)]


class DeviceCiphertext(Params):
    device_id: Id
    olm_type: Annotated[int, Field(ge=0, le=1, description="0 pre-key, 1 normal")]
    ciphertext: Ciphertext = Field(description="Olm message body, standard base64 (padded)")


class GroupCiphertext(Params):
    ciphertext: Ciphertext = Field(description="Megolm message, standard base64 (padded)")
    device_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_SECRET_FANOUT)] = Field(
        description="Every device that gets this same ciphertext (with olm_type 2)"
    )


class SendSecretParams(Params):
    messages: Annotated[list[DeviceCiphertext], Field(max_length=MAX_BATCH_IDS)] = Field(
        default_factory=list, description="Olm ciphertexts, one per device"
    )
    group: GroupCiphertext | None = Field(
        None, description="One Megolm ciphertext for many devices"
    )
    recipients: Annotated[list[Id], Field(max_length=MAX_BATCH_IDS)] = Field(
        default_factory=list,
        description=(
            "Users whose every device with published keys (but this one) must be addressed, "
            "else DEVICE_LIST_CHANGED and nothing is sent"
        ),
    )

    @model_validator(mode="after")
    def _addresses_each_device_once(self) -> Self:
        if not self.messages and self.group is None:
            raise ValueError("give messages, a group ciphertext, or both")
        # A device may get one Olm message and the group message (a new group key and the
        # first message under it, in that order), but not two of either.
        olm = [m.device_id for m in self.messages]
        group = self.group.device_ids if self.group is not None else []
        if len(set(olm)) != len(olm) or len(set(group)) != len(group):
            raise ValueError("a device may be addressed only once in messages and once in group")
        return self


class SendSecretResult(Result):
    ids: list[int]


class PendingSecretParams(Params):
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY_LIMIT)] = 100


class PendingSecretResult(Result):
    messages: list[SecretMessageUpdate]


class AckSecretParams(Params):
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_HISTORY_LIMIT)]


class AckSecretResult(Result):
    deleted: int


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    params: type[Params]
    result: type[BaseModel]
    needs_device: bool
    summary: str
    http: bool = True


_ALL = [
    Method("auth.send_code", SendCodeParams, SendCodeResult, False, "Send a login code to a phone"),
    Method("auth.sign_in", SignInParams, SignInResult, False, "Sign in (or up) with the code"),
    Method(
        "auth.authorize",
        AuthorizeParams,
        AuthorizeResult,
        False,
        "Bind this WebSocket to a device token",
        http=False,
    ),
    Method("users.me", Empty, User, True, "Your own user"),
    Method("users.get", UserIdParams, User, True, "A user by id"),
    Method("users.resolve", ResolveParams, User, True, "Find a user by @username or +phone"),
    Method("profile.update", UpdateProfileParams, User, True, "Change display name or privacy"),
    Method("profile.set_username", SetUsernameParams, User, True, "Set or clear your username"),
    Method("contacts.add", UserIdParams, Ok, True, "Add a user to your contacts"),
    Method("contacts.remove", UserIdParams, Ok, True, "Remove a user from your contacts"),
    Method("contacts.list", Empty, ContactsResult, True, "Your contacts"),
    Method("devices.list", Empty, DevicesResult, True, "Your logged-in devices"),
    Method("devices.revoke", RevokeDeviceParams, Ok, True, "Log a device out now"),
    Method("devices.revoke_others", Empty, RevokeOthersResult, True, "Log out all other devices"),
    Method("chats.open_private", OpenPrivateParams, Chat, True, "Get or create a 1:1 chat"),
    Method("chats.get", ChatIdParams, Chat, True, "A chat you are a member of"),
    Method("chats.members", MembersParams, MembersResult, True, "Page through a chat's members"),
    Method("groups.create", CreateGroupParams, Chat, True, "Create a group; you become admin"),
    Method("groups.add", AddMembersParams, Chat, True, "Add members (admins only)"),
    Method("groups.remove", RemoveMemberParams, Chat, True, "Remove a member (admins only)"),
    Method("groups.leave", ChatIdParams, Ok, True, "Leave a group"),
    Method("groups.rename", RenameParams, Chat, True, "Rename a group (admins only)"),
    Method("groups.set_admin", SetAdminParams, Chat, True, "Grant or revoke admin (admins only)"),
    Method("messages.send", SendMessageParams, SentResult, True, "Send a text message"),
    Method("messages.forward", ForwardParams, ForwardResult, True, "Forward messages"),
    Method("messages.edit", EditParams, SentResult, True, "Edit your own message"),
    Method("messages.delete", DeleteParams, SeqResult, True, "Delete for me or for everyone"),
    Method("messages.react", ReactParams, SeqResult, True, "Set or clear your reaction"),
    Method("messages.read", ReadParams, SeqResult, True, "Mark a chat read up to a message"),
    Method("messages.typing", ChatIdParams, Ok, True, "Tell members you are typing"),
    Method("messages.history", HistoryParams, HistoryResult, True, "Page back through a chat"),
    Method("dialogs.list", DialogsParams, DialogsResult, True, "Your chats, newest first"),
    Method("updates.state", Empty, StateResult, True, "Your newest update number"),
    Method("keys.upload", UploadKeysParams, KeyCountResult, True, "Publish this device's keys"),
    Method("keys.count", Empty, KeyCountResult, True, "How many one-time keys the server holds"),
    Method("keys.query", QueryKeysParams, QueryKeysResult, True, "Users' devices and their keys"),
    Method("keys.claim", ClaimKeysParams, ClaimKeysResult, True, "Take one key per device"),
    Method(
        "secret.send",
        SendSecretParams,
        SendSecretResult,
        True,
        "Relay Olm and Megolm ciphertexts to devices",
    ),
    Method(
        "secret.pending",
        PendingSecretParams,
        PendingSecretResult,
        True,
        "Ciphertexts waiting for this device",
    ),
    Method(
        "secret.ack",
        AckSecretParams,
        AckSecretResult,
        True,
        "Delete ciphertexts this device has received",
    ),
    Method(
        "updates.difference",
        DifferenceParams,
        DifferenceResult,
        True,
        "Every update after `since`, in order",
    ),
]

METHODS: dict[str, Method] = {m.name: m for m in _ALL}

__all__ = [
    "MAX_CIPHERTEXT_CHARS",
    "MAX_GROUP_MEMBERS",
    "MAX_SECRET_FANOUT",
    "MAX_TEXT_LENGTH",
    "METHODS",
    "AckSecretParams",
    "AckSecretResult",
    "AddMembersParams",
    "AuthorizeParams",
    "AuthorizeResult",
    "ChatIdParams",
    "ClaimKeysParams",
    "ClaimKeysResult",
    "ClaimedKey",
    "ContactsResult",
    "CreateGroupParams",
    "DeleteParams",
    "DeviceCiphertext",
    "DevicesResult",
    "DialogsParams",
    "DialogsResult",
    "DifferenceParams",
    "DifferenceResult",
    "EditParams",
    "Empty",
    "ForwardParams",
    "ForwardResult",
    "GroupCiphertext",
    "HistoryParams",
    "HistoryResult",
    "KeyCountResult",
    "MembersParams",
    "MembersResult",
    "Method",
    "Ok",
    "OpenPrivateParams",
    "Params",
    "PendingSecretParams",
    "PendingSecretResult",
    "PublishedDeviceKeys",
    "QueryKeysParams",
    "QueryKeysResult",
    "ReactParams",
    "ReadParams",
    "RemoveMemberParams",
    "RenameParams",
    "ResolveParams",
    "Result",
    "RevokeDeviceParams",
    "RevokeOthersResult",
    "SendCodeParams",
    "SendCodeResult",
    "SendMessageParams",
    "SendSecretParams",
    "SendSecretResult",
    "SentResult",
    "SeqResult",
    "SetAdminParams",
    "SetUsernameParams",
    "SignInParams",
    "SignInResult",
    "SignedKey",
    "StateResult",
    "UpdateProfileParams",
    "UploadKeysParams",
    "UserIdParams",
]
