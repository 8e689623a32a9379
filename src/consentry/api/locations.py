"""Locations: a practice's sites, each with its own texting number and timezone."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["locations"])
