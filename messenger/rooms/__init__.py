"""Rooms: auth rules, power levels, state and the room service (domain layer)."""
