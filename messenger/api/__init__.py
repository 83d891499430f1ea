"""The Matrix Client-Server API over aiohttp: thin handlers, errors mapped once."""
