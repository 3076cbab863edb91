"""Fixtures for the admin tests (tests/test_admin_*.py): real users in real groups.

Registered for the whole suite in ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission


def _user(username: str, *, groups=(), superuser=False):
    User = get_user_model()
    user = User.objects.create_user(
        username=username, email=f"{username}@example.com", password="pw-" + username
    )
    if superuser:
        user.is_superuser = user.is_staff = True
        user.save()
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def sales_manager(db):
    return _user("sally", groups=["Sales managers"])


@pytest.fixture
def editor(db):
    return _user("eddie", groups=["Editors"])


@pytest.fixture
def viewer(db):
    """May open the admin and see orders, but not act on them (no "change")."""
    group = Group.objects.create(name="Order viewers")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"),
        Permission.objects.get(content_type__app_label="wagtail_smi", codename="view_purchasejob"),
    )
    return _user("vera", groups=["Order viewers"])


@pytest.fixture
def superuser(db):
    return _user("root", superuser=True)


@pytest.fixture
def manager_client(client, sales_manager):
    client.force_login(sales_manager)
    return client


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client
