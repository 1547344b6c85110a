"""A custodian on a fresh state directory, and a node enrolled with it for DC ``local``."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import NodeKey
from samizdat.custody.service import Custodian
from tests.custody_requests import CUSTODIAN, DC


@pytest.fixture
def custodian(tmp_path: Path) -> Custodian:
    return Custodian.init(tmp_path / CUSTODIAN, CUSTODIAN, "XB")


@pytest.fixture
def node(tmp_path: Path, custodian: Custodian) -> NodeKey:
    key = NodeKey.load_or_create(tmp_path / "node.key")
    custodian.enroll_node(key.encoded(), DC)
    return key
