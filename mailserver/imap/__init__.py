"""The IMAP4rev1 / IMAP4rev2 server (RFC 3501, RFC 9051).

Layers, each testable on its own (see ARCHITECTURE.md):

- ``mailserver.imap.wire``: bytes <-> typed commands and responses, no I/O.
- ``mailserver.imap.mime``: the MIME views FETCH needs (ENVELOPE,
  BODYSTRUCTURE, BODY[section], BINARY[section]), pure functions.
"""
