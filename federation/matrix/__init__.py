"""Matrix server-server API (spec "Server-Server API"): keys, signatures, discovery, transport."""
