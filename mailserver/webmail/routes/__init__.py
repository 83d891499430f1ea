"""The webmail's HTTP handlers, one module per area; each offers ``routes()``."""
