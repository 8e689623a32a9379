"""Signed outbound events: the practice's webhook endpoints, the events sent to them, and their log."""
