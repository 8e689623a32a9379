"""Examples of the API's bodies, as its OpenAPI document shows them: one for every schema an operation
takes or answers, keyed by the schema's name. They tell one story (Maple Pediatrics, its patient Ava
Reyes and her phone) and each is checked against its own schema by the tests.
"""

from __future__ import annotations

from typing import Any

PATIENT_ID = "5b0e3f4c-2a51-4a8e-9d7c-0e6f1b9a7c31"
MESSAGE_ID = "9d3c1e57-6f0b-4a8e-b1a2-7c4d2e8f9a10"
CONVERSATION_ID = "c2b7e0d4-1f6a-4c3e-9b8d-5a7e2f1c0d93"
LOCATION_ID = "e1a4c7d2-3b5f-4e8a-9c1d-2f6b8a0e4c75"
AT = "2027-01-15T14:30:00+00:00"
PHONE = "+16175550111"
EMAIL = "ava.reyes@example.org"
ERROR = {"code": "invalid", "message": "not a phone number", "field": "phones.0.number"}

_PATIENT_IN = {
    "first_name": "Ava",
    "last_name": "Reyes",
    "phones": [{"number": "(617) 555-0111", "line_type": "mobile"}],
    "emails": [EMAIL],
    "preferred_phone": "(617) 555-0111",
    "marketing_consent": "no",
    "external_id": "EHR-10443",
    "language": "es",
    "tags": ["pediatrics"],
    "last_visit_on": "2026-11-02",
}
_PATIENT_OUT = {
    "id": PATIENT_ID,
    "updated_at": AT,
    "first_name": "Ava",
    "last_name": "Reyes",
    "phones": [{"number": PHONE, "line_type": "mobile", "valid": True}],
    "emails": [EMAIL],
    "preferred_phone": PHONE,
    "do_not_contact": False,
    "marketing_consent": "no",
    "timezone": "",
    "external_id": "EHR-10443",
    "language": "es",
    "notification_overrides": {},
    "channel_opt_outs": [],
    "tags": ["pediatrics"],
    "last_visit_on": "2026-11-02",
    "location_id": None,
    "kept": [
        {
            "field": "phones[0]",
            "reason": "sms_opted_out",
            "message": "this number opted out of texts, and stays opted out: only the person can opt back in",
        }
    ],
}
_CONTACT_STATUS = {"address": PHONE, "sms": "opted_out", "email": None, "blocked_categories": ["recall"]}
_EVENT = {
    "seq": 118,
    "at": AT,
    "subject": "sms",
    "state": "opted_out",
    "source": "sms_keyword",
    "actor": PHONE,
    "evidence": {"keyword": "STOP", "provider_ref": "SM5f1c0d2e9b8a7c6d5e4f3a2b1c0d9e8f"},
    "note": None,
    "hash": "3f9a0c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a",
    "prev_hash": "a1c3e5f7092b4d6f8a0c2e4b6d8f0a1c3e5f7092b4d6f8a0c2e4b6d8f0a1c3e",
}
_DELIVERY_ROW = {
    "id": 5012,
    "message_id": MESSAGE_ID,
    "kind": "automation",
    "category": "recall",
    "patient_id": PATIENT_ID,
    "channel": "sms",
    "address": PHONE,
    "status": "failed",
    "reason": None,
    "error": "30006: landline or unreachable carrier",
    "created_at": AT,
    "sent_at": AT,
    "delivered_at": None,
    "actor": "api:EHR sync",
}
_ENTRY = {
    "id": 77,
    "direction": "inbound",
    "body": "Can we move it to Thursday?",
    "author": PHONE,
    "created_at": AT,
    "delivery_id": None,
    "delivery_status": None,
}
_CONVERSATION = {
    "id": CONVERSATION_ID,
    "phone": PHONE,
    "patients": [{"id": PATIENT_ID, "first_name": "Ava"}],
    "flag": "possible_opt_out",
    "flag_rule": "please stop texting",
    "flagged_at": AT,
    "sms": "opted_in",
    "opted_out": False,
    "last_activity_at": AT,
    "last_entry": {"direction": "inbound", "text": "please stop texting me", "created_at": AT},
}
_REPORT = {
    "total": 3,
    "by_status": {"delivered": 1, "skipped": 2},
    "by_reason": {"sms_opted_out": 1, "do_not_contact": 1},
    "by_channel": {"sms": 3},
}
_REACH = {"can_send": False, "reason": "sms_opted_out"}
_KEY = {"id": 3, "label": "EHR sync", "scopes": ["read", "manage"], "created_at": AT, "revoked_at": None}
_SUBSCRIPTION = {"id": 4, "endpoint": "https://fcm.googleapis.com/fcm/send/dXQ6...", "created_at": AT, "last_error": ""}

DELIVERY_CSV_EXAMPLE = (
    "patient_id,external_id,first_name,last_name,channel,address,status,reason,error,sent_at,delivered_at\r\n"
    f"{PATIENT_ID},EHR-10443,Ava,Reyes,sms,{PHONE},delivered,,,{AT},{AT}\r\n"
    f"{PATIENT_ID},EHR-10443,Ava,Reyes,email,{EMAIL},skipped,email_unsubscribed,,,\r\n"
)

_ENDPOINT_IN = {
    "url": "https://ehr.maple.example/consentry/events",
    "events": ["consent.changed", "message.received"],
    "description": "EHR: consent flags and patient replies",
}
_ENDPOINT = {
    "id": "7a1f3c5e-9b2d-4e6f-8a0c-1d3e5f7a9b2c",
    **_ENDPOINT_IN,
    "created_at": AT,
    "deliveries": {"pending": 1, "delivered": 340, "failed": 0},
}
_EVENT_DELIVERY = {
    "id": 9051,
    "event_id": "msg_4c7e1a9b2d5f4e8a9c0b1d2e3f4a5b6c",
    "type": "consent.changed",
    "status": "delivered",
    "attempts": 2,
    "next_attempt_at": None,
    "last_status_code": 204,
    "last_error": "",
    "created_at": AT,
    "delivered_at": "2027-01-15T14:30:06+00:00",
    "attempt_log": [
        {"at": AT, "status_code": 500, "error": "answered 500 Internal Server Error", "ms": 41},
        {"at": "2027-01-15T14:30:05+00:00", "status_code": 204, "error": "", "ms": 23},
    ],
    "payload": {
        "type": "consent.changed",
        "timestamp": "2027-01-15T14:30:00Z",
        "data": {
            "seq": 118,
            "subject": "sms",
            "address": PHONE,
            "patient_ids": [PATIENT_ID],
            "state": "opted_out",
            "source": "sms_keyword",
            "actor": PHONE,
            "recorded_at": "2027-01-15T14:30:00Z",
            "message_id": 4410,
            "delivery_id": None,
        },
    },
}

EXAMPLES: dict[str, Any] = {
    "ErrorOut": {"error": {"code": "not_found", "message": "no such patient", "field": None}},
    "ErrorsOut": {"error": ERROR, "errors": [ERROR]},
    "WarningsOut": {
        "error": {"code": "warnings", "message": "the plan carries warnings: acknowledge them to send", "field": None},
        "warnings": {"marketing_consent_no": [PATIENT_ID]},
    },
    "PatientIn": _PATIENT_IN,
    "PatientPatch": {"phones": [{"number": PHONE, "line_type": "mobile"}, {"number": "+16175550122"}], "tags": []},
    "PatientOut": _PATIENT_OUT,
    "PatientPage": {"patients": [_PATIENT_OUT], "next_cursor": "eyJ0IjoiMjAyNy0wMS0xNVQxNDozMDowMCIsImkiOjF9"},
    "ContactStatusOut": _CONTACT_STATUS,
    "HistoryOut": {"address": PHONE, "status": _CONTACT_STATUS, "events": [_EVENT], "next_after_seq": None},
    "OptOutIn": {"address": EMAIL, "reason": "asked at the front desk to get no more email"},
    "OptOutOut": {
        "address": EMAIL,
        "changed": True,
        "event": {**_EVENT, "subject": "email", "state": "unsubscribed", "source": "api", "actor": "api:EHR sync"},
        "status": {"address": EMAIL, "sms": None, "email": "unsubscribed", "blocked_categories": None},
    },
    "ResubscribeIn": {"email": EMAIL},
    "ResubscribeOut": {"email": EMAIL, "sent": True, "detail": "an opt-in email went to the address"},
    "BlockIn": {"number": "(617) 555-0122", "categories": ["recall"]},
    "BlockCategoriesIn": {"categories": ["recall", "survey"]},
    "BlockOut": {"number": "+16175550122", "categories": ["recall"]},
    "CategoryIn": {"key": "flu_clinic", "marketing": False, "notification_channels": ["sms", "email"]},
    "CategoryGridIn": {"notification_channels": ["email"], "quiet_hours_exempt": False},
    "CategoryOut": {
        "key": "recall",
        "marketing": False,
        "notification_channels": ["sms"],
        "patient_can_disable": True,
        "quiet_hours_exempt": False,
    },
    "MessageIn": {
        "kind": "automation",
        "category": "recall",
        "patient_ids": [PATIENT_ID],
        "content": {
            "sms": "Hi {{first_name}}, Ava is due for her check-up. Call us to book.",
            "email": {"subject": "Time for a check-up", "text": "Hi {{first_name}}, it is time to book a check-up."},
        },
    },
    "MessageOut": {
        "id": MESSAGE_ID,
        "kind": "automation",
        "category": "recall",
        "created_at": AT,
        "deliveries": [
            {"patient_id": PATIENT_ID, "channel": "sms", "address": PHONE, "status": "pending", "reason": None},
            {
                "patient_id": PATIENT_ID,
                "channel": "email",
                "address": EMAIL,
                "status": "skipped",
                "reason": "email_unsubscribed",
            },
        ],
        "warnings": {},
        "report": {
            "total": 2,
            "by_status": {"pending": 1, "skipped": 1},
            "by_reason": {"email_unsubscribed": 1},
            "by_channel": {"sms": 1, "email": 1},
        },
        "deliveries_truncated": False,
        "deliveries_url": f"https://consentry.example/api/v1/messages/{MESSAGE_ID}/deliveries",
    },
    "MessageDeliveryPageOut": {
        "deliveries": [
            {"patient_id": PATIENT_ID, "channel": "sms", "address": PHONE, "status": "pending", "reason": None},
        ],
        "next_cursor": "MTAyNDU",
    },
    "MessagePageOut": {
        "messages": [
            {
                "id": MESSAGE_ID,
                "kind": "broadcast",
                "category": "announcement",
                "actor": "staff:4",
                "created_at": AT,
                "report": _REPORT,
            }
        ],
        "next_cursor": None,
    },
    "DeliveryPageOut": {"deliveries": [_DELIVERY_ROW], "next_cursor": None},
    "DueIn": {"category": "recall", "due_on": "2027-02-01"},
    "DueOut": {"patient_id": PATIENT_ID, "category": "recall", "due_on": "2027-02-01"},
    "RecallOut": {
        "id": PATIENT_ID,
        "first_name": "Ava",
        "last_name": "Reyes",
        "due_on": "2027-02-01",
        "do_not_contact": False,
        "channels": [
            {"channel": "sms", "can_send": False, "reason": "sms_opted_out", "address": PHONE},
            {"channel": "voice", "can_send": True, "reason": None, "address": PHONE},
            {"channel": "email", "can_send": True, "reason": None, "address": EMAIL},
        ],
        "phones": [
            {
                "number": PHONE,
                "line_type": "mobile",
                "valid": True,
                "preferred": True,
                "marks": ["sms_opted_out"],
                "sms": _REACH,
                "voice": {"can_send": True, "reason": None},
            }
        ],
        "emails": [{"address": EMAIL, "marks": [], "email": {"can_send": True, "reason": None}}],
    },
    "ConversationOut": _CONVERSATION,
    "ConversationDetailOut": {**_CONVERSATION, "entries": [_ENTRY]},
    "ConversationOptOutOut": {
        "conversation": {
            **_CONVERSATION,
            "flag": "",
            "flag_rule": "",
            "sms": "opted_out",
            "opted_out": True,
            "entries": [],
        },
        "changed": True,
    },
    "ReplyIn": {"body": "Thursday at 10:00 works. See you then!"},
    "ReplyOut": {
        "entry": {**_ENTRY, "direction": "outbound", "author": "staff:4", "delivery_id": 5013},
        "delivery_id": 5013,
    },
    "PracticeOut": {
        "id": "0f2d6b8a-4c1e-4a3f-8b5d-7e9c1a3f5b72",
        "name": "Maple Pediatrics",
        "texting_number": "+16175550100",
        "timezone": "America/New_York",
        "contact_phone": "+16175550199",
        "email_from": "Maple Pediatrics <frontdesk@maple.example>",
        "send_window": ["08:00", "21:00"],
        "keyword_mode": "self",
        "keyword_languages": ["es"],
        "reasonable_means": "flag",
        "contact_preferences_source": "ehr",
        "sms_rate_per_second": None,
        "email_rate_per_second": None,
        "frequency_caps": False,
        "frequency_cap_per_day": 1,
        "frequency_cap_per_week": 3,
        "opt_out_hint": "first",
        "opt_out_hint_text": "Reply STOP to opt out.",
        "sms_provider": "twilio",
        "email_provider": "sendgrid",
    },
    "PracticePatch": {
        "send_window": ["09:00", "20:00"],
        "keyword_languages": ["es"],
        "reasonable_means": "flag",
        "opt_out_hint": "first",
        "opt_out_hint_text": "Reply STOP to opt out. Responda STOP para cancelar.",
    },
    "KeyIn": {"label": "EHR sync", "scopes": ["read", "manage"]},
    "KeyOut": _KEY,
    "NewKeyOut": {**_KEY, "key": "csk_6Hc2q8Wm3N0rT5vY1bD4fG7jK9pS2uX5zA8cE1hL4nQ"},
    "PublicKeyOut": {"enabled": True, "public_key": "BOr5Yc0vGzKJ8qQ3sW2nN9x4c8d..."},
    "SubscriptionIn": {
        "endpoint": "https://fcm.googleapis.com/fcm/send/dXQ6...",
        "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA...", "auth": "tBHItJI5svbpez7KI4CCXg"},
    },
    "SubscriptionOut": _SUBSCRIPTION,
    "NoticeOut": {
        "id": 12,
        "delivery_id": 5014,
        "category": "document_shared",
        "subject": "A document to sign",
        "body": "Your consent form is ready in the portal.",
        "created_at": AT,
        "read_at": None,
    },
    "PortalLinkOut": {"url": "https://msg.maple.example/p/eyJwIjoiNWIwZTNm...", "expires_in_days": 30},
    "LocationIn": {"name": "Maple Street North", "texting_number": "(617) 555-0142", "timezone": "America/Denver"},
    "LocationPatch": {"twilio_messaging_service_sid": "MG0123456789abcdef0123456789abcdef"},
    "LocationOut": {
        "id": LOCATION_ID,
        "name": "Maple Street North",
        "texting_number": "+16175550142",
        "timezone": "America/Denver",
        "twilio_messaging_service_sid": "",
        "patients": 212,
    },
    "EndpointIn": _ENDPOINT_IN,
    "EndpointOut": _ENDPOINT,
    "NewEndpointOut": {**_ENDPOINT, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3dUg7e2HiLk="},
    "EventDeliveryPageOut": {"deliveries": [_EVENT_DELIVERY], "next_cursor": None},
}
