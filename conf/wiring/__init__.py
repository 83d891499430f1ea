"""Builders that turn a School's objects into its network services.

One module per service family, each owned by the package it wires:
``build(school) -> list[Service]``.  ``School.build_services`` calls them in
order; a module that has nothing to start yet returns an empty list.
"""
