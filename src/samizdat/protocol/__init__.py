"""Wire protocol: schema, error codes and sans-I/O sessions shared by server and client."""

from samizdat.protocol.errors import ErrorCode, SamizdatError
from samizdat.protocol.methods import METHODS, Method

__all__ = ["METHODS", "ErrorCode", "Method", "SamizdatError"]
