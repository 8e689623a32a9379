"""The product's own errors, shared by every layer."""

from __future__ import annotations


class InvalidInput(Exception):
    """Bad input, named by the field it came from (``content.sms``, ``phones[0].number``). Nothing was written.

    The API answers it with a 422, the CLI with an error naming the option, a
    page with the form's message.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
