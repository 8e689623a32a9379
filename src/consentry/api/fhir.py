"""FHIR R4: patients in (Patient, transaction Bundle), consent and communications out."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["fhir"])
