"""allauth's emails name the product, never the host the request came in on."""

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_sign_in_code_email_is_from_ner_studio(client, admin):
    client.post(
        reverse("account_request_login_code"), {"email": "ada@acme.test"}, HTTP_HOST="127.0.0.1"
    )

    email = mail.outbox[-1]
    assert email.subject == "[NER Studio] Sign-In Code"
    assert email.body.startswith("Hello from NER Studio!")
    assert "Thank you for using NER Studio." in email.body
    assert "127.0.0.1" not in email.subject + email.body
