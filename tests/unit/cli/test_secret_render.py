"""What a peer writes reaches the terminal as text, never as terminal commands."""

from __future__ import annotations

from samizdat.cli.secret_render import printable, ttl_text


def test_control_and_bidi_characters_in_a_peers_text_are_neutralised() -> None:
    hostile = "ok\x1b[2J\x1b]0;pwned\x07 \u202eevil\u202c\r\x00"
    shown = printable(hostile)
    assert not any(c in shown for c in "\x1b\x07\u202e\u202c\r\x00")
    assert shown.startswith("ok")


def test_newlines_tabs_and_ordinary_text_pass_through() -> None:
    assert (
        printable("line one\nline two\tend — ünïcödé 🔒") == "line one\nline two\tend — ünïcödé 🔒"
    )


def test_timers_read_as_people_say_them() -> None:
    assert [ttl_text(s) for s in (0, 5, 60, 3600, 86400, 604800, 90)] == [
        "off",
        "5 s",
        "1 min",
        "1 h",
        "1 d",
        "1 w",
        "90 s",
    ]
