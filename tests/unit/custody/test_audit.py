from __future__ import annotations

import hashlib
import logging
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.custody.audit import AuditEntry, AuditError, AuditLog, verify_log

GENESIS = "0" * 64


def _fill(path: Path, n: int) -> list[AuditEntry]:
    log = AuditLog(path)
    return [
        log.append(
            at=1000.0 + i,
            kind="unseal",
            outcome="granted" if i % 2 else "refused",
            reason="" if i % 2 else "stale request",
            requester=f"szn1:node{i}",
            subject="dc:xa",
            nonce=f"nonce-{i}",
        )
        for i in range(n)
    ]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@contextmanager
def _rewriting(path: Path) -> Iterator[list[bytes]]:
    """The log's lines (each with its newline), written back as the block leaves them."""
    lines = _lines(path)
    yield lines
    path.write_bytes(b"".join(lines))


def _canonical(obj: dict[str, object]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def _edit(path: Path, index: int, field: str, value: object) -> None:
    with _rewriting(path) as lines:
        obj = orjson.loads(lines[index])
        obj[field] = value
        lines[index] = _canonical(obj)


def test_appended_entries_chain_from_genesis_and_continue_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    first = _fill(path, 3)
    assert [e.seq for e in first] == [1, 2, 3]
    assert first[0].prev == GENESIS
    assert [e.prev for e in first[1:]] == [e.digest for e in first[:-1]]

    reopened = AuditLog(path)
    assert len(reopened) == 3
    assert reopened.head == first[-1].digest
    fourth = reopened.append(at=2000.0, kind="enroll", outcome="done", requester="operator")
    assert fourth.seq == 4
    assert fourth.prev == first[-1].digest
    assert reopened.head == fourth.digest
    assert verify_log(path) == [*first, fourth]


def test_an_empty_log_has_the_genesis_head_and_no_entries(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert len(log) == 0
    assert log.head == GENESIS
    assert log.entries() == []


def test_entries_round_trip_exactly(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    written = _fill(path, 5)
    assert AuditLog(path).entries() == written
    assert verify_log(path) == written


def test_each_line_is_one_sorted_json_object(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 2)
    for raw in _lines(path):
        assert raw.endswith(b"\n")
        obj = orjson.loads(raw)
        assert list(obj) == sorted(obj)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 99),
        ("at", 1.5),
        ("kind", "disclose"),
        ("outcome", "done"),
        ("reason", "edited"),
        ("requester", "court:x"),
        ("subject", "dc:xb"),
        ("nonce", "other"),
        ("prev", "1" * 64),
        ("digest", "2" * 64),
    ],
)
def test_editing_any_field_of_any_line_is_reported_at_that_line(
    tmp_path: Path, index: int, field: str, value: object
) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 4)
    _edit(path, index, field, value)
    with pytest.raises(AuditError, match=rf"line {index + 1}:") as info:
        verify_log(path)
    assert info.value.line == index + 1
    with pytest.raises(AuditError, match=rf"line {index + 1}:"):
        AuditLog(path)


def test_an_edit_with_a_recomputed_digest_still_breaks_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 3)
    with _rewriting(path) as lines:
        obj = orjson.loads(lines[0])
        obj["outcome"] = "granted"
        del obj["digest"]
        obj["digest"] = hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()
        lines[0] = _canonical(obj)
    with pytest.raises(AuditError, match=r"line 2: prev"):
        verify_log(path)


def test_reformatting_a_line_without_changing_values_is_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 2)
    with _rewriting(path) as lines:
        indented = orjson.dumps(orjson.loads(lines[1]), option=orjson.OPT_INDENT_2)
        lines[1] = indented.replace(b"\n", b"") + b"\n"
    with pytest.raises(AuditError, match=r"line 2: not in canonical form"):
        verify_log(path)


def test_deleting_a_middle_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 4)
    with _rewriting(path) as lines:
        del lines[1]
    with pytest.raises(AuditError, match=r"line 2: seq gap"):
        AuditLog(path)


def test_reordering_lines_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 4)
    with _rewriting(path) as lines:
        lines[1], lines[2] = lines[2], lines[1]
    with pytest.raises(AuditError, match=r"line 2:"):
        verify_log(path)


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        (b"not json at all\n", "not valid JSON"),
        (b"\n", "not valid JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"seq": 3}\n', "missing fields"),
    ],
)
def test_garbage_in_the_middle_is_an_error_not_a_repair(
    tmp_path: Path, garbage: bytes, why: str
) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 4)
    with _rewriting(path) as lines:
        lines.insert(2, garbage)
    before = path.read_bytes()
    with pytest.raises(AuditError, match=rf"line 3: {why}"):
        AuditLog(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("seq", True, "seq is not an integer"),
        ("seq", 2.0, "seq is not an integer"),
        ("at", 1001, "at is not a float"),
        ("kind", None, "kind is not a string"),
        ("extra", "x", "unexpected fields"),
    ],
)
def test_wrong_types_and_extra_fields_are_reported(
    tmp_path: Path, field: str, value: object, why: str
) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 3)
    _edit(path, 1, field, value)
    with pytest.raises(AuditError, match=rf"line 2: {why}"):
        verify_log(path)


def test_a_torn_final_line_is_dropped_and_the_log_still_opens_and_appends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.log"
    written = _fill(path, 3)
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"at":1003.0,"kind":"uns')
    with pytest.raises(AuditError, match=r"line 4: incomplete"):
        verify_log(path)

    with caplog.at_level(logging.WARNING, logger="samizdat.custody.audit"):
        log = AuditLog(path)
    assert "torn final line" in caplog.text
    assert path.read_bytes() == intact
    assert len(log) == 3
    fourth = log.append(at=1003.0, kind="unseal", outcome="granted", nonce="n4")
    assert fourth.seq == 4
    assert verify_log(path) == [*written, fourth]


def test_a_final_entry_missing_only_its_newline_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.log"
    written = _fill(path, 3)
    path.write_bytes(path.read_bytes()[:-1])
    with caplog.at_level(logging.WARNING, logger="samizdat.custody.audit"):
        log = AuditLog(path)
    assert "lacked its newline" in caplog.text
    assert len(log) == 3
    assert log.head == written[-1].digest
    assert "nonce-2" in log.nonces
    assert log.entries() == written


def test_a_torn_line_alone_leaves_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b'{"seq":1,"at"')
    log = AuditLog(path)
    assert len(log) == 0
    assert path.read_bytes() == b""


def test_the_log_file_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "custodian" / "audit.log"
    AuditLog(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_nonces_survive_a_reopen_and_pruning_keeps_the_recent_ones(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append(at=100.0, kind="unseal", outcome="granted", nonce="old")
    log.append(at=200.0, kind="enroll", outcome="done", requester="operator")
    log.append(at=300.0, kind="unseal", outcome="refused", reason="replay", nonce="new")
    assert log.nonces == {"old": 100.0, "new": 300.0}

    reopened = AuditLog(path)
    assert reopened.nonces == {"old": 100.0, "new": 300.0}
    reopened.append(at=400.0, kind="unseal", outcome="granted", nonce="newer")
    reopened.prune_nonces(100.0)
    assert reopened.nonces == {"old": 100.0, "new": 300.0, "newer": 400.0}
    reopened.prune_nonces(150.0)
    assert reopened.nonces == {"new": 300.0, "newer": 400.0}
    reopened.prune_nonces(401.0)
    assert reopened.nonces == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"at": float("nan"), "kind": "unseal", "outcome": "granted"},
        {"at": float("inf"), "kind": "unseal", "outcome": "granted"},
        {"at": 1.0, "kind": "", "outcome": "granted"},
        {"at": 1.0, "kind": "unsëal", "outcome": "granted"},
        {"at": 1.0, "kind": "unseal", "outcome": "maybe"},
    ],
)
def test_invalid_appends_are_refused_and_write_nothing(
    tmp_path: Path, kwargs: dict[str, object]
) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    with pytest.raises(ValueError, match="audit entry"):
        log.append(**kwargs)  # type: ignore[arg-type]
    assert path.read_bytes() == b""
    assert len(log) == 0


def test_a_log_cut_short_on_disk_is_noticed_by_entries_and_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 3)
    log = AuditLog(path)
    with _rewriting(path) as lines:
        del lines[2:]
    with pytest.raises(AuditError, match="shrank on disk"):
        log.entries()
    with pytest.raises(AuditError, match="shrank on disk"):
        log.append(at=1.0, kind="unseal", outcome="granted")


def test_entries_another_process_appended_are_taken_in_and_the_chain_continues(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.log"
    serving = AuditLog(path)
    serving.append(at=1.0, kind="unseal", outcome="granted", nonce="n1")
    operator = AuditLog(path)  # the CLI, in another process, opening the same file
    operator.append(at=2.0, kind="revoke", outcome="done", requester="operator")
    entry = serving.append(at=3.0, kind="unseal", outcome="refused", nonce="n2")
    assert entry.seq == 3
    assert [e.kind for e in serving.entries()] == ["unseal", "revoke", "unseal"]
    assert [e.seq for e in verify_log(path)] == [1, 2, 3]
    operator.refresh()
    assert set(operator.nonces) == {"n1", "n2"}


def test_a_foreign_line_that_breaks_the_chain_is_refused_before_anything_is_appended(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append(at=1.0, kind="unseal", outcome="granted")
    with path.open("ab") as handle:
        handle.write(b'{"not": "an entry"}\n')
    before = path.read_bytes()
    with pytest.raises(AuditError):
        log.append(at=2.0, kind="unseal", outcome="granted")
    assert path.read_bytes() == before


_text = st.text(max_size=40)
_record = st.fixed_dictionaries(
    {
        "at": st.floats(allow_nan=False, allow_infinity=False),
        "kind": st.text(st.characters(max_codepoint=127), min_size=1, max_size=20),
        "outcome": st.sampled_from(["granted", "refused", "done"]),
        "reason": st.one_of(_text, st.sampled_from(['say "no"\nthen\r\nstop', "\u2028\x00\\"])),
        "requester": _text,
        "subject": _text,
        "nonce": _text,
    }
)


@settings(max_examples=50, deadline=None)
@given(records=st.lists(_record, max_size=12), split=st.integers(min_value=0, max_value=12))
def test_any_sequence_of_appends_round_trips_exactly_and_verifies(
    records: list[dict[str, str | float]], split: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.log"
        log = AuditLog(path)
        written = [log.append(**r) for r in records[:split]]  # type: ignore[arg-type]
        log = AuditLog(path)
        written += [log.append(**r) for r in records[split:]]  # type: ignore[arg-type]

        assert len(path.read_bytes().splitlines()) == len(records)
        assert verify_log(path) == written
        assert AuditLog(path).entries() == written
        for entry, record in zip(written, records, strict=True):
            assert {k: getattr(entry, k) for k in record} == record
        assert log.head == (written[-1].digest if written else GENESIS)
