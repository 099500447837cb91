"""Amounts of credits read as English: "1 credit", "2 credits", "1,500 credits"."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from credits import services as credits
from credits.admin import approved, declined
from credits.models import CreditAccount, TopUpRequest
from generation.models import Generation
from tests.factories import GenerationFactory, TopUpRequestFactory

pytestmark = pytest.mark.django_db


def test_a_balance_of_one_reads_as_one_credit(org):
    credits.top_up(org=org, amount=1)

    assert str(CreditAccount.objects.get(org=org)) == "Acme Creative: 1 credit"


def test_a_top_up_request_names_its_amount_in_the_singular_or_the_plural(org):
    one = TopUpRequestFactory(org=org, amount=1)
    many = TopUpRequestFactory(org=org, amount=900)

    assert str(one) == f"Request {one.reference}: 1 credit for Acme Creative"
    assert str(many) == f"Request {many.reference}: 900 credits for Acme Creative"


def test_requesting_and_withdrawing_one_credit_say_one_credit(admin_client, org):
    response = admin_client.post(reverse("workspace:request-credits"), {"amount": 1, "note": ""})
    request = TopUpRequest.objects.get(org=org)
    admin_client.post(reverse("workspace:withdraw-credit-request", args=[request.public_id]))

    withdrawn = admin_client.get(reverse("workspace:dashboard"))

    (requested,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert requested.startswith("Requested 1 credit. ")
    assert "Withdrew the request for 1 credit." in withdrawn.content.decode()


def test_the_operators_decisions_say_one_credit(org):
    request = TopUpRequestFactory(org=org, amount=1)

    assert f"({request.amount} credit for" in declined(request)
    done = credits.approve_top_up_request(top_up_request=request, operator=None)  # command line
    assert ": added 1 credit to Acme Creative. New balance: 1." in approved(done)


def test_again_says_one_credit_for_one_image_at_one_credit(admin_client, org, admin, local_model):
    credits.top_up(org=org, amount=5)
    generation = GenerationFactory(
        org=org, user=admin, provider=local_model, count=1, status=Generation.Status.DONE
    )

    html = admin_client.get(reverse("generation:again", args=[generation.public_id])).content
    assert "This costs <strong>1 credit</strong>" in html.decode()
