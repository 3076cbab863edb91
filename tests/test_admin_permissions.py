"""Who sees orders and reports: sales managers yes, plain editors no (as non-superusers)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.admin_support import *  # noqa: F403  (user and client fixtures)

pytestmark = pytest.mark.django_db

REPORT_URLS = [
    "wagtail_smi_reports:revenue",
    "wagtail_smi_reports:images",
    "wagtail_smi_reports:funnel",
]
ACTIONS = ["retry", "refund", "resend_email", "redeliver", "resolve"]


def _denied(response) -> bool:
    # Wagtail answers a logged-in user without permission with a redirect to the
    # dashboard (with a message) or a 403, depending on the view.
    return response.status_code == 403 or (
        response.status_code == 302 and response.url.rstrip("/") == reverse("wagtailadmin_home").rstrip("/")
    )


def test_sales_managers_group_has_exactly_the_order_permissions(sales_manager):
    assert sales_manager.has_perm("wagtailadmin.access_admin")
    assert sales_manager.has_perm("wagtail_smi.view_purchasejob")
    assert sales_manager.has_perm("wagtail_smi.change_purchasejob")
    assert not sales_manager.has_perm("wagtail_smi.delete_purchasejob")
    assert not sales_manager.has_perm("wagtail_smi.add_purchasejob")


def test_editor_cannot_open_orders_list_order_or_export(editor_client, make_job):
    job = make_job("completed", email="buyer@example.com")
    for url in (
        reverse("smi_orders:index"),
        reverse("smi_orders:index") + "?export=csv",
        reverse("smi_orders:index") + "?export=xlsx",
        reverse("smi_orders:index_results"),
        reverse("smi_orders:inspect", args=[job.pk]),
    ):
        response = editor_client.get(url)
        assert _denied(response), url
        assert b"buyer@example.com" not in response.content


@pytest.mark.parametrize("name", REPORT_URLS)
@pytest.mark.parametrize("export", ["", "?export=csv", "?export=xlsx"])
def test_editor_cannot_open_or_export_reports(editor_client, name, export):
    assert _denied(editor_client.get(reverse(name) + export))
    assert _denied(editor_client.get(reverse(name + "_results") + export))


@pytest.mark.parametrize("action", ACTIONS)
def test_editor_cannot_run_actions(editor_client, make_job, action):
    job = make_job("needs_attention")
    response = editor_client.post(
        reverse(f"smi_orders:action_{action}", args=[job.pk]),
        {"reason": "x", "outcome": "delivered"},
    )
    assert _denied(response)
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert not job.events.exists()


def test_editor_menu_and_dashboard_hide_orders_and_reports(editor_client, make_job):
    make_job("needs_attention")
    response = editor_client.get(reverse("wagtailadmin_home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("smi_orders:index") not in html
    assert reverse("wagtail_smi_reports:revenue") not in html
    assert "smi-dashboard" not in html
    assert "data-smi-needs-attention" not in html


def test_sales_manager_sees_menu_dashboard_orders_and_reports(manager_client, make_job):
    job = make_job("needs_attention", email="buyer@example.com")
    home = manager_client.get(reverse("wagtailadmin_home")).content.decode()
    assert reverse("smi_orders:index") in home
    assert reverse("wagtail_smi_reports:revenue") in home
    assert "smi-dashboard" in home
    assert 'data-smi-needs-attention="1"' in home

    listing = manager_client.get(reverse("smi_orders:index"))
    assert listing.status_code == 200
    assert b"buyer@example.com" in listing.content
    inspect = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert inspect.status_code == 200
    assert b"Mark resolved" in inspect.content
    for name in REPORT_URLS:
        assert manager_client.get(reverse(name)).status_code == 200
        assert manager_client.get(reverse(name) + "?export=csv").status_code == 200


def test_actions_refuse_get(manager_client, make_job):
    job = make_job("needs_attention")
    response = manager_client.get(reverse("smi_orders:action_resolve", args=[job.pk]))
    assert response.status_code == 405


def test_orders_cannot_be_added_edited_copied_or_deleted_in_the_admin(make_job):
    from django.urls import NoReverseMatch

    job = make_job("completed")
    for name, args in (("add", []), ("edit", [job.pk]), ("copy", [job.pk]), ("delete", [job.pk])):
        with pytest.raises(NoReverseMatch):
            reverse(f"smi_orders:{name}", args=args)


def test_sales_managers_migration_is_idempotent_and_reversible():
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    migration = importlib.import_module("wagtail_smi.migrations.0002_sales_managers_group")
    migration.create_group(apps, None)  # a second run changes nothing
    wanted = {"access_admin", "change_purchasejob", "view_purchasejob"}

    def order_codenames():
        group = Group.objects.get(name="Sales managers")
        return set(group.permissions.values_list("codename", flat=True))

    # (Wagtail's own migrations may add harmless "choose" permissions to every group.)
    assert wanted <= order_codenames()
    assert not {"add_purchasejob", "delete_purchasejob"} & order_codenames()
    migration.remove_group(apps, None)
    assert not Group.objects.filter(name="Sales managers").exists()
    migration.create_group(apps, None)
    assert order_codenames() == wanted
