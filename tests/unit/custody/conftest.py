"""A custodian on a fresh state directory, and a node enrolled with it for DC ``local``: the
node that signs ``disclose_request``s by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import NodeKey
from samizdat.custody.service import Custodian
from tests.custody_requests import CUSTODIAN, DC, NODE


@pytest.fixture
def custodian(tmp_path: Path) -> Custodian:
    return Custodian.init(tmp_path / CUSTODIAN, CUSTODIAN, "XB")


@pytest.fixture
def node(custodian: Custodian) -> NodeKey:
    custodian.enroll_node(NODE.encoded(), DC)
    return NODE
