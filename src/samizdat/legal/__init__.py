"""Lawful requests: court orders, the court registry, the disclosure policy and their review.

``orders`` makes and parses signed court orders, ``registry`` keeps the courts the operator
recognises, ``policy`` loads the declarative disclosure policy, and ``review`` decides (with
no I/O) whether a submission of orders may go on to the custodians. Nothing here can reach
message content, contacts, media or key material: the only fields that can ever be named are
the phone number and IP addresses.
"""
