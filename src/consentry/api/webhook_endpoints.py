"""Webhook endpoints: where the practice's signed outbound events go."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["webhook-endpoints"])
