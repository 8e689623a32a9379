"""Twilio, for texts and calls: sending (``sending.py``), its vocabulary of statuses and error codes
(``vocabulary.py``), and its webhooks turned into the product's own values (``webhooks.py``)."""

from .sending import TwilioProvider

__all__ = ["TwilioProvider"]
