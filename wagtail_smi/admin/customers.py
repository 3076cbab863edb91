"""Customers: the erasure request's confirmation page (the customers report itself is in
``reports.py``).

GET says what will be removed and what is kept, for every order of the address; POST (with
its CSRF token, the address typed again and a reason) runs
``operations.anonymise_customer`` as the signed-in admin, after
``operations.require_permission``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import include, path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import FormView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from .. import operations
from ..operations.customers import ANONYMISE, orders_of
from ..pricing import format_price
from ..timeline import format_moment
from .forms import AnonymiseForm


class AnonymiseCustomerView(WagtailAdminTemplateMixin, FormView):
    template_name = "wagtail_smi/admin/anonymise.html"
    form_class = AnonymiseForm
    page_title = _("Remove a customer's personal data")
    header_icon = "user"

    def dispatch(self, request, *args, **kwargs):
        # Permission before the address is looked up: no hint of who bought.
        operations.require_permission(request.user, ANONYMISE)
        self.email = (request.GET.get("email") or "").strip()
        self.orders = list(orders_of(self.email).order_by("-created_at")) if self.email else []
        if not self.orders:
            messages.error(request, gettext("No order was placed with this address."))
            return redirect(reverse("wagtail_smi_reports:customers"))
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self):
        return self.email

    def get_breadcrumbs_items(self):
        return [
            *self.breadcrumbs_items,
            {"url": reverse("wagtail_smi_reports:customers"), "label": gettext("Customers")},
            {"url": "", "label": self.get_page_title()},
        ]

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "email": self.email}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            email=self.email,
            action_url=f"{reverse('wagtail_smi_customers:anonymise')}?"
            f"{urlencode({'email': self.email})}",
            back_url=f"{reverse('smi_orders:list')}?{urlencode({'email': self.email})}",
            orders=[
                {
                    "short_id": job.short_id,
                    "url": reverse("smi_orders:inspect", args=[job.pk]),
                    "created": format_moment(job.created_at),
                    "status": job.get_status_display(),
                    "amount": format_price(job.amount_cents, job.currency),
                }
                for job in self.orders
            ],
            consequences=[
                gettext(
                    "Removed from all %(count)s orders of this address: the email address, "
                    "the language, the hashed IP addresses of the downloads, and the address "
                    "wherever an order's log quotes it."
                )
                % {"count": len(self.orders)},
                gettext(
                    "Kept: amounts, currencies, dates, what was bought and the payment "
                    "provider's ids, so reports and accounts do not change."
                ),
                gettext(
                    "Each order records that its personal data was removed, by you, and why. "
                    "This cannot be undone."
                ),
                gettext(
                    "The payment provider keeps its own record of the payment: erase the "
                    "customer there too (Stripe: Customers, or the payment's page)."
                ),
            ],
        )
        return context

    def form_valid(self, form):
        try:
            count = operations.anonymise_customer(
                self.email, reason=form.cleaned_data["reason"], actor=self.request.user
            )
        except operations.OperationError as exc:
            messages.error(self.request, exc.message)
            return self.form_invalid(form)
        messages.success(
            self.request,
            gettext("Personal data removed from %(count)s orders.") % {"count": count},
        )
        return redirect(reverse("wagtail_smi_reports:customers"))

    def form_invalid(self, form):
        messages.error(self.request, gettext("Nothing was done: please correct the form."))
        return super().form_invalid(form)


urlpatterns = [
    path(
        "smi/customers/",
        include(
            (
                [path("anonymise/", AnonymiseCustomerView.as_view(), name="anonymise")],
                "wagtail_smi_customers",
            )
        ),
    )
]
