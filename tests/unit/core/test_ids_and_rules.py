"""Identifier generation and the pure rules of chats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.core import rules
from samizdat.core.ids import ChatId, SnowflakeGenerator, UserId
from samizdat.core.model import Chat, Membership
from samizdat.protocol.errors import ErrorCode, SamizdatError
from samizdat.protocol.models import ChatKind, PhoneVisibility

NOW = 1_800_000_000.0


@given(st.lists(st.floats(min_value=NOW - 10, max_value=NOW + 10), min_size=1, max_size=2000))
def test_snowflakes_are_unique_increasing_and_safe_for_javascript(times: list[float]) -> None:
    gen = SnowflakeGenerator(node=3)
    ids = [gen.next(t) for t in times]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(0 < i < 2**53 for i in ids)


def test_snowflake_node_must_fit() -> None:
    with pytest.raises(ValueError, match="node id"):
        SnowflakeGenerator(node=16)


def group(members: set[int], admins: set[int], creator: int = 1) -> Membership:
    chat = Chat(
        ChatId(100),
        ChatKind.GROUP,
        "g",
        UserId(creator),
        NOW,
        len(members),
        frozenset(UserId(a) for a in admins),
    )
    return Membership(chat, frozenset(UserId(m) for m in members))


@pytest.mark.parametrize("name", ["alice", "Bob_1234", "a" * 32, "@alice"])
def test_valid_usernames_are_accepted_and_keyed_lowercase(name: str) -> None:
    shown, key = rules.normalize_username(name)
    assert key == shown.lower()
    assert not shown.startswith("@")


@pytest.mark.parametrize("name", ["abcd", "a" * 33, "al ice", "alice!", "", "ålice"])
def test_invalid_usernames_are_refused(name: str) -> None:
    with pytest.raises(SamizdatError) as err:
        rules.normalize_username(name)
    assert err.value.code is ErrorCode.USERNAME_INVALID


def test_non_members_are_told_the_chat_does_not_exist() -> None:
    with pytest.raises(SamizdatError) as err:
        rules.require_member(group({1, 2}, {1}), UserId(3))
    assert err.value.code is ErrorCode.CHAT_NOT_FOUND
    with pytest.raises(SamizdatError):
        rules.require_member(None, UserId(1))


def test_members_to_add_skips_existing_and_duplicates_and_enforces_the_cap() -> None:
    m = group({1, 2}, {1})
    assert rules.members_to_add(m, [UserId(2), UserId(3), UserId(3), UserId(4)]) == [3, 4]
    with pytest.raises(SamizdatError) as err:
        rules.members_to_add(m, [UserId(3), UserId(4)], limit=3)
    assert err.value.code is ErrorCode.CHAT_INVALID


def test_only_admins_remove_and_nobody_removes_the_creator() -> None:
    m = group({1, 2, 3}, {1, 2})
    with pytest.raises(SamizdatError) as err:
        rules.check_removal(m, UserId(3), UserId(2))
    assert err.value.code is ErrorCode.NOT_ADMIN
    with pytest.raises(SamizdatError):
        rules.check_removal(m, UserId(2), UserId(1))
    rules.check_removal(m, UserId(2), UserId(3))


def test_phone_visibility_follows_the_owners_setting() -> None:
    kw = {"owner": UserId(1), "viewer": UserId(2)}
    assert rules.phone_visible_to(PhoneVisibility.EVERYBODY, viewer_is_contact=False, **kw)
    assert not rules.phone_visible_to(PhoneVisibility.NOBODY, viewer_is_contact=True, **kw)
    assert rules.phone_visible_to(PhoneVisibility.CONTACTS, viewer_is_contact=True, **kw)
    assert not rules.phone_visible_to(PhoneVisibility.CONTACTS, viewer_is_contact=False, **kw)
    assert rules.phone_visible_to(
        PhoneVisibility.NOBODY, owner=UserId(1), viewer=UserId(1), viewer_is_contact=False
    )


def test_blank_text_is_refused() -> None:
    with pytest.raises(SamizdatError) as err:
        rules.validate_text(" \n\t")
    assert err.value.code is ErrorCode.TEXT_INVALID


@given(st.lists(st.sampled_from(["👍", "❤", "😂", None]), min_size=1, max_size=30))
def test_reaction_counts_never_go_negative_and_match_a_recount(choices: list[str | None]) -> None:
    counts: dict[str, int] = {}
    current: str | None = None
    for choice in choices:
        counts = rules.apply_reaction(counts, current, choice)
        current = choice
    assert all(v > 0 for v in counts.values())
    assert counts == ({current: 1} if current else {})


def test_private_pair_is_canonical_and_needs_two_people() -> None:
    assert rules.private_pair(UserId(5), UserId(2)) == (2, 5)
    with pytest.raises(SamizdatError):
        rules.private_pair(UserId(5), UserId(5))
