"""The key custodian: holds shares of DC keys and identity records, opens them only by policy.

``Custodian`` is the service itself (state directory, policy, audit log); ``custodian_app``
serves it over HTTP; ``unseal_dc_key`` and ``disclose_record`` are the asking side.
"""

from samizdat.custody.audit import AuditError, AuditLog, verify_log
from samizdat.custody.client import (
    CustodianClient,
    CustodianUnreachable,
    HttpCustodianClient,
    InProcessCustodianClient,
)
from samizdat.custody.http import custodian_app
from samizdat.custody.node import (
    CustodianOutcome,
    CustodianRef,
    NotEnoughShares,
    disclose_record,
    unseal_dc_key,
)
from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.service import Custodian, CustodianStateError

__all__ = [
    "AuditError",
    "AuditLog",
    "Custodian",
    "CustodianClient",
    "CustodianOutcome",
    "CustodianRef",
    "CustodianStateError",
    "CustodianUnreachable",
    "HttpCustodianClient",
    "InProcessCustodianClient",
    "NotEnoughShares",
    "Refusal",
    "RefusalCode",
    "custodian_app",
    "disclose_record",
    "unseal_dc_key",
    "verify_log",
]
