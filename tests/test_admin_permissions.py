"""Who sees orders and reports: sales managers yes, plain editors no (as non-superusers);
and nobody, not even a superuser, adds, edits or deletes an order in the admin."""

from __future__ import annotations

import json

import pytest
from django.urls import NoReverseMatch, reverse

from tests.html_support import hrefs, parse, select, text
from wagtail_smi.models import PurchaseJob

pytestmark = pytest.mark.django_db

REPORT_URLS = [
    "wagtail_smi_reports:revenue",
    "wagtail_smi_reports:images",
    "wagtail_smi_reports:funnel",
    "wagtail_smi_reports:customers",
]
ACTIONS = ["take_in_hand", "retry", "refund", "resend_email", "redeliver", "revoke", "resolve"]
CHOOSER = "wagtailsnippetchoosers_wagtail_smi_purchasejob"


def _denied(response) -> bool:
    # Wagtail answers a logged-in user without permission with a redirect to the
    # dashboard (with a message) or a 403, depending on the view.
    return response.status_code == 403 or (
        response.status_code == 302
        and response.url.rstrip("/") == reverse("wagtailadmin_home").rstrip("/")
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


@pytest.mark.parametrize("status", ["needs_attention", "completed"])
@pytest.mark.parametrize("action", ACTIONS)
def test_editor_cannot_open_or_confirm_actions(editor_client, make_job, action, status):
    job = make_job(status, email="buyer@example.com")
    url = reverse(f"smi_orders:action_{action}", args=[job.pk])
    page = editor_client.get(url)
    assert _denied(page)
    assert b"buyer@example.com" not in page.content
    assert _denied(editor_client.post(url, {"reason": "x", "outcome": "delivered"}))
    job.refresh_from_db()
    assert job.status == status
    assert not job.events.exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_who_may_only_view_orders_gets_no_actions(viewer_client, make_job, action):
    job = make_job("needs_attention", email="buyer@example.com")
    inspect = viewer_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert inspect.status_code == 200
    assert "buyer@example.com" in text(inspect, ".smi-order__fields")
    assert not select(inspect, ".smi-order__actions")
    url = reverse(f"smi_orders:action_{action}", args=[job.pk])
    assert not [href for href in hrefs(inspect) if href.startswith(url)]
    assert _denied(viewer_client.get(url))
    assert _denied(viewer_client.post(url, {"reason": "x", "outcome": "delivered"}))
    job.refresh_from_db()
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


@pytest.mark.parametrize(
    "name, args",
    [
        ("add", []),
        ("edit", ["pk"]),
        ("copy", ["pk"]),
        ("delete", ["pk"]),
        ("history", ["pk"]),
        ("usage", ["pk"]),
        ("lock", ["pk"]),
        ("unlock", ["pk"]),
        ("unpublish", ["pk"]),
        ("workflow_history", ["pk"]),
    ],
)
def test_orders_have_no_add_edit_copy_delete_history_or_locking_urls(make_job, name, args):
    job = make_job("completed")
    with pytest.raises(NoReverseMatch):
        reverse(f"smi_orders:{name}", args=[job.pk for _ in args])


def test_superuser_sees_no_add_edit_or_delete_buttons(client, superuser, make_job):
    client.force_login(superuser)
    job = make_job("completed")
    pages = [
        client.get(reverse("smi_orders:list")),
        client.get(reverse("smi_orders:inspect", args=[job.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        # Links to the order's image and page (their own admin) are fine; none to edit orders.
        found = [h for h in hrefs(page) if "/smi/orders/" in h or "/purchasejob/" in h]
        assert found
        assert not [
            h
            for h in found
            if "/edit/" in h or "/delete/" in h or "/copy/" in h or h.endswith("/new/")
        ]
        labels = {text(button) for button in select(page, "a.button, button, [role=menuitem]")}
        assert not labels & {"Add order", "Edit", "Delete", "Copy"}
    # No bulk-action checkboxes either: no bulk action applies to orders.
    assert not select(pages[0], "[data-bulk-action-checkbox]")


@pytest.mark.parametrize("method", ["get", "post"])
def test_superuser_cannot_bulk_delete_orders_through_the_snippets_bulk_action(
    client, superuser, make_job, method
):
    client.force_login(superuser)
    job = make_job("completed")
    url = reverse("wagtail_bulk_action", args=["wagtail_smi", "purchasejob", "delete"])
    response = getattr(client, method)(f"{url}?id={job.pk}", {})
    assert _denied(response)
    assert PurchaseJob.objects.filter(pk=job.pk).exists()


def test_orders_are_listed_under_snippets_for_sales_managers(manager_client, make_job):
    make_job("completed")
    page = manager_client.get(reverse("wagtailsnippets:index"))
    assert page.status_code == 200
    assert reverse("smi_orders:list") in hrefs(page)
    assert "Orders" in text(page, "table")


def test_editor_gets_no_snippets_page_for_orders(editor_client, make_job):
    make_job("completed")
    assert _denied(editor_client.get(reverse("wagtailsnippets:index")))


def _chooser_html(response) -> str:
    """The chooser answers with Wagtail's modal-workflow JSON; its HTML is under ``html``."""
    return json.loads(response.content)["html"]


def test_order_chooser_lists_and_searches_orders_for_a_sales_manager(manager_client, make_job):
    wanted = make_job("completed", email="jane@example.com")
    other = make_job("needs_attention", email="other@example.com")

    response = manager_client.get(reverse(f"{CHOOSER}:choose"))
    assert response.status_code == 200
    listing = parse(_chooser_html(response))
    chosen_links = hrefs(listing)
    for job in (wanted, other):
        assert reverse(f"{CHOOSER}:chosen", args=[job.pk]) in chosen_links
    assert "jane@example.com" in text(listing, "table")
    assert not select(
        listing, "#tab-create, form[action*='create']"
    )  # orders come from checkout only

    found = manager_client.get(reverse(f"{CHOOSER}:choose_results"), {"q": "jane@"})
    assert found.status_code == 200
    found_links = hrefs(found)
    assert reverse(f"{CHOOSER}:chosen", args=[wanted.pk]) in found_links
    assert reverse(f"{CHOOSER}:chosen", args=[other.pk]) not in found_links


def test_choosing_an_order_links_to_its_admin_page(manager_client, make_job):
    job = make_job("completed")
    response = manager_client.get(reverse(f"{CHOOSER}:chosen", args=[job.pk]))
    assert response.status_code == 200
    result = json.loads(response.content)["result"]
    assert result["id"] == str(job.pk)
    assert result["string"] == str(job)
    assert result["edit_url"] == reverse("smi_orders:inspect", args=[job.pk])


def test_a_snippet_chooser_block_for_orders_opens_the_order_chooser(make_job):
    from wagtail.snippets.blocks import SnippetChooserBlock

    job = make_job("completed")
    widget = SnippetChooserBlock("wagtail_smi.PurchaseJob").field.widget
    html = parse(widget.render("order", job, attrs={"id": "id_order"}))
    assert select(html, "[data-chooser-url]")[0]["data-chooser-url"] == reverse(f"{CHOOSER}:choose")
    assert reverse("smi_orders:inspect", args=[job.pk]) in hrefs(html)


def test_admin_url_finder_gives_the_order_page_to_those_who_may_see_orders(
    make_job, sales_manager, viewer, editor
):
    from wagtail.admin.admin_url_finder import AdminURLFinder

    job = make_job("completed")
    order_page = reverse("smi_orders:inspect", args=[job.pk])
    assert AdminURLFinder(sales_manager).get_edit_url(job) == order_page
    assert AdminURLFinder(viewer).get_edit_url(job) == order_page
    assert AdminURLFinder(editor).get_edit_url(job) is None


def test_editor_cannot_use_the_order_chooser(editor_client, make_job):
    job = make_job("completed", email="buyer@example.com")
    for url in (
        reverse(f"{CHOOSER}:choose"),
        reverse(f"{CHOOSER}:choose_results") + "?q=buyer",
        reverse(f"{CHOOSER}:chosen", args=[job.pk]),
        reverse(f"{CHOOSER}:chosen_multiple") + f"?id={job.pk}",
    ):
        response = editor_client.get(url)
        assert _denied(response), url
        assert b"buyer@example.com" not in response.content
    with pytest.raises(NoReverseMatch):
        reverse(f"{CHOOSER}:create")


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
