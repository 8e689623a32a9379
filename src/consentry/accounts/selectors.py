"""Reads of staff accounts for people to look at."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User

STAFF_PREFIX = "staff:"


def actor_names(actors: Iterable[str]) -> dict[str, str]:
    """How to show each actor of the ledger or the history: a staff user's name for ``staff:<id>``,
    the actor itself for everything else (an API key's label, ``portal:<patient>``, ``system``)."""
    actors = set(actors)
    ids = {a[len(STAFF_PREFIX) :] for a in actors if a.startswith(STAFF_PREFIX) and a[len(STAFF_PREFIX) :].isdigit()}
    users = {str(u.pk): u for u in User.objects.filter(pk__in=ids)}
    names = {}
    for actor in actors:
        user = users.get(actor[len(STAFF_PREFIX) :]) if actor.startswith(STAFF_PREFIX) else None
        names[actor] = f"{user.get_full_name() or user.email} (staff)" if user else actor
    return names
