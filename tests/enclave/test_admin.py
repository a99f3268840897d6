"""The Django admin shows every app's rows to a superuser and changes none of them: writes go through the
services, which audit them."""

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from tests.conftest import Personas
from tests.factories import UserFactory
from tests.preferences.helpers import make_comparisons

pytestmark = pytest.mark.django_db

READ_ONLY_APPS = ("annotation", "preferences", "releases", "training", "governance")


@pytest.fixture
def superuser_client(client: Client) -> Client:
    client.force_login(UserFactory.create(username="root", is_staff=True, is_superuser=True))
    return client


def _registered(app: str) -> list[Any]:
    return [model for model in admin.site._registry if model._meta.app_label == app]


@pytest.mark.parametrize("app", READ_ONLY_APPS)
def test_it_lists_every_model_of_the_app_read_only(superuser_client: Client, app: str) -> None:
    models = _registered(app)
    assert models, f"{app} registers its models in the admin"
    for model in models:
        meta = model._meta
        changelist = superuser_client.get(f"/django-admin/{meta.app_label}/{meta.model_name}/")
        assert changelist.status_code == 200, meta.label
        assert superuser_client.get(f"/django-admin/{meta.app_label}/{meta.model_name}/add/").status_code == 403


def test_it_refuses_to_change_an_item_or_a_judgement(superuser_client: Client, personas: Personas) -> None:
    item = make_comparisons(personas.project, personas.data_lead, 1)[0]
    before = item.messages
    change = superuser_client.post(f"/django-admin/annotation/item/{item.pk}/change/", {"priority": "5"})
    assert change.status_code == 403
    deleted = superuser_client.post(f"/django-admin/annotation/item/{item.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 403
    item.refresh_from_db()
    assert (item.priority, item.messages) == (0, before)
    assert superuser_client.get(f"/django-admin/annotation/item/{item.pk}/change/").status_code == 200
