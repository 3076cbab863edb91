"""Order actions as confirmation pages, Wagtail's confirm pattern: GET says what will happen
and shows the form, POST (with its CSRF token) does it.

Each view runs one operation (``wagtail_smi.operations``) as the signed-in admin, after
``operations.require_permission``, so the state machine checks it and the event log names
who acted. Which actions an order offers comes from the state table
(``models.states.operations_for``); the operation has the final word. An operation that
refuses becomes an error message on the order, never a server error.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import FormView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from .. import operations
from ..conf import smi_settings
from ..models import JobStatus, PurchaseJob, RefundRequest
from ..models.states import (
    IN_PIPELINE,
    REDELIVER,
    REFUND,
    RESEND_LINK,
    RESOLVE,
    RETRY,
    REVOKE,
    TAKE_IN_HAND,
    operations_for,
)
from ..operations.delivery import download_expiry_hours
from ..operations.refunds import submission_key
from ..operations.resolution import DELIVERED_BY_HAND
from ..pricing import format_price
from .forms import ConfirmForm, ReasonForm, RefundForm, ResolveForm

logger = logging.getLogger(__name__)

S = JobStatus


class OrderActionView(WagtailAdminTemplateMixin, FormView):
    """One admin operation on one order, confirmed before it runs."""

    #: The operation this view runs (``models.states``).
    operation = ""
    #: The URL name within the orders' namespace is ``action_<name>``; the path uses the
    #: name with dashes.
    name = ""
    #: The button on the order's page, and this page's title.
    label = ""
    #: One line on the order's page, under the button.
    summary = ""
    #: The submit button's text and classes (``serious`` for what cannot be undone).
    submit_label = _("Confirm")
    submit_classname = "button"
    form_class = ConfirmForm
    template_name = "wagtail_smi/admin/order_action.html"

    # Set by the viewset (``OrderViewSet.action_view``).
    model = PurchaseJob
    index_url_name = None
    inspect_url_name = None
    header_icon = ""

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.pk = kwargs["pk"]

    def dispatch(self, request, *args, **kwargs):
        # Permission before the order is looked up: no hint of which orders exist.
        operations.require_permission(request.user, self.operation)
        self.object = get_object_or_404(
            PurchaseJob.objects.select_related("image", "site"), pk=self.pk
        )
        if not self.is_offered(self.object):
            messages.error(
                request,
                gettext("This action is not possible while the order is “%(status)s”.")
                % {"status": self.object.get_status_display()},
            )
            return redirect(self.get_inspect_url())
        return super().dispatch(request, *args, **kwargs)

    @classmethod
    def is_offered(cls, job: PurchaseJob) -> bool:
        return cls.operation in operations_for(job.status)

    def get_page_title(self):
        return self.label

    def get_page_subtitle(self):
        return str(self.object)

    def get_inspect_url(self) -> str:
        return reverse(self.inspect_url_name, args=[quote(self.object.pk)])

    def get_success_url(self) -> str:
        return self.get_inspect_url()

    def get_breadcrumbs_items(self):
        return [
            *self.breadcrumbs_items,
            {
                "url": reverse(self.index_url_name),
                "label": capfirst(PurchaseJob._meta.verbose_name_plural),
            },
            {"url": self.get_inspect_url(), "label": str(self.object)},
            {"url": "", "label": self.label},
        ]

    def consequences(self) -> list[str]:
        """What will happen, in the order it happens, for this order."""
        return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = self.object
        context.update(
            object=job,
            consequences=self.consequences(),
            action_url=self.request.path,
            inspect_url=self.get_inspect_url(),
            amount_display=format_price(job.amount_cents, job.currency),
            status_tone=job.state.tone,
            submit_label=self.submit_label,
            submit_classname=self.submit_classname,
        )
        return context

    def form_valid(self, form):
        try:
            success = self.run(form.cleaned_data)
        except operations.OperationError as exc:
            messages.error(
                self.request, gettext("The action failed: %(error)s") % {"error": exc.message[:300]}
            )
        except Exception as exc:  # shown to the admin, logged with the traceback
            logger.exception("order action %s failed for job %s", self.name, self.object.pk)
            messages.error(
                self.request,
                gettext("The action failed: %(error)s")
                % {"error": str(exc)[:300] or type(exc).__name__},
            )
        else:
            if success:
                messages.success(self.request, success)
        return redirect(self.get_success_url())

    def form_invalid(self, form):
        messages.error(self.request, gettext("Nothing was done: please correct the form."))
        return super().form_invalid(form)

    def run(self, data: dict) -> str | None:
        """Run the operation; return the success message (None: the run said why itself)."""
        raise NotImplementedError


class RetryView(OrderActionView):
    operation = RETRY
    name = "retry"
    label = _("Retry processing")
    summary = _("Back to paid, and processed again.")
    submit_label = _("Yes, retry")

    def consequences(self):
        return [
            gettext("The order goes back to “Paid” and is processed again, with a new deadline."),
            gettext(
                "If the upscaler still has a live job for it, that job is polled rather than "
                "paid for twice; otherwise the image is submitted again (check the upscaler's "
                "dashboard first if a submission may have gone through)."
            ),
        ]

    def run(self, data):
        operations.retry(self.object.pk, actor=self.request.user)
        return gettext("Processing restarted.")


class RefundView(OrderActionView):
    operation = REFUND
    name = "refund"
    label = _("Refund")
    summary = _("Give all or part of the money back through the payment provider.")
    submit_label = _("Yes, refund")
    submit_classname = "button serious"
    form_class = RefundForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "job": self.object}

    def dispatch(self, request, *args, **kwargs):
        token = request.POST.get("token", "") if request.method == "POST" else ""
        if (
            token
            and RefundRequest.objects.filter(
                job_id=self.pk, key__startswith=f"wagtail-smi-refund-{self.pk}-{token}-"
            ).exists()
        ):
            # This very form was submitted before (a double click, a resubmitted page).
            operations.require_permission(request.user, self.operation)
            messages.info(
                request, gettext("This refund was already submitted: nothing was refunded twice.")
            )
            return redirect(reverse(self.inspect_url_name, args=[quote(self.pk)]))
        return super().dispatch(request, *args, **kwargs)

    def refund_display(self) -> str:
        return format_price(self.object.refundable_cents, self.object.currency)

    def consequences(self):
        job = self.object
        money = {
            "paid": format_price(job.paid_amount_cents, job.currency),
            "refunded": format_price(job.refund_amount_cents, job.currency),
            "left": self.refund_display(),
            "provider": job.payment_provider or gettext("default"),
        }
        if job.refund_amount_cents:
            lines = [gettext("%(paid)s was paid, %(refunded)s is already refunded.") % money]
        else:
            lines = [gettext("%(paid)s was paid.") % money]
        lines.append(
            gettext(
                "The amount you enter goes back to the customer through the payment provider "
                "(%(provider)s), and the customer is emailed."
            )
            % money
        )
        everything = gettext("Refunding everything left (%(left)s):") % money
        if job.status in IN_PIPELINE:
            everything += " " + gettext("processing stops first (the order moves to “Failed”),")
        everything += " " + gettext("the order becomes “Refunded”")
        if job.status == S.COMPLETED and not job.access_revoked_at:
            everything += " " + gettext("and the download link stops working")
        lines.append(everything + ".")
        lines.append(self.partial_consequence())
        lines += [
            gettext(
                "The reason is kept on the order and in its event log; the customer does not see it."
            ),
            gettext("If the provider refuses, nothing is refunded and the order shows its answer."),
            gettext("Submitting this page twice refunds once."),
        ]
        return lines

    def partial_consequence(self) -> str:
        status = self.object.status
        if status == S.COMPLETED:
            return gettext(
                "Refunding less: the order stays “Completed” and the download keeps working, "
                "unless you tick “Also revoke the download”."
            )
        if status == S.FAILED:
            return gettext(
                "Refunding less: the order becomes “Refunded” and the rest is kept (its "
                "processing failed, nothing more will be delivered)."
            )
        if status == S.NEEDS_ATTENTION:
            return gettext("Refunding less: the order still needs attention afterwards.")
        return gettext("Refunding less: processing carries on and the customer gets the image.")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["refund_display"] = self.refund_display()
        return context

    def run(self, data):
        job = self.object
        amount = data["amount"]
        result = operations.refund(
            job.pk,
            reason=data["reason"],
            amount_cents=amount,
            actor=self.request.user,
            request_key=data["token"],
            revoke_access=bool(data.get("revoke")),
        )
        request = RefundRequest.objects.filter(
            key=submission_key(job, data["token"], amount)
        ).first()
        if request is None:
            return gettext("Nothing was refunded: the order had nothing left to refund.")
        if not request.went_through:
            # Refused: a failed order now needs attention; a completed one stays completed.
            messages.warning(
                self.request,
                gettext("The refund could not be made: %(error)s")
                % {"error": request.error or result.last_error or gettext("see the event log")},
            )
            return None
        done = gettext("Refunded %(amount)s.") % {"amount": format_price(amount, job.currency)}
        if result.status == S.REFUNDED:
            return done
        left = format_price(result.refundable_cents, job.currency)
        if result.status == S.COMPLETED:
            if result.access_revoked_at:
                return done + " " + gettext("The download was revoked.")
            return (
                done
                + " "
                + gettext("%(left)s can still be refunded; the download still works.")
                % {"left": left}
            )
        return done + " " + gettext("%(left)s can still be refunded.") % {"left": left}


class ResendLinkView(OrderActionView):
    operation = RESEND_LINK
    name = "resend_email"
    label = _("Resend the download email")
    summary = _("A new link with a new expiry; the old link stops working.")
    submit_label = _("Yes, send a new link")

    def consequences(self):
        job = self.object
        return [
            gettext(
                "A new download link is emailed to %(email)s. It works for %(hours)s hours from "
                "now and for %(limit)s downloads."
            )
            % {
                "email": job.email or gettext("(no address)"),
                "hours": download_expiry_hours(job),
                "limit": smi_settings.DOWNLOAD_LIMIT,
            },
            gettext("The current link stops working."),
        ]

    def run(self, data):
        operations.resend_link(self.object.pk, actor=self.request.user)
        return gettext("The download email was sent again with a new link.")


class RedeliverView(OrderActionView):
    operation = REDELIVER
    name = "redeliver"
    label = _("Regenerate the delivery")
    summary = _("Rebuild a lost or stuck delivery and email a new link.")
    submit_label = _("Yes, regenerate it")

    def consequences(self):
        lines = [
            gettext(
                "The result is fetched again from the upscaler (the local upscaler makes it "
                "again from the original) and stored; this runs now and can take a while."
            ),
        ]
        if self.object.status == S.NEEDS_ATTENTION:
            lines.append(gettext("The order becomes “Completed”."))
        lines.append(
            gettext("A new download link is emailed to %(email)s; the current link stops working.")
            % {"email": self.object.email or gettext("(no address)")}
        )
        return lines

    def run(self, data):
        operations.redeliver(self.object.pk, actor=self.request.user)
        return gettext("The delivery is being rebuilt.")


class RevokeView(OrderActionView):
    operation = REVOKE
    name = "revoke"
    label = _("Revoke the download")
    summary = _("The link stops working; the order stays completed.")
    submit_classname = "button serious"
    submit_label = _("Yes, revoke it")
    form_class = ReasonForm

    def consequences(self):
        job = self.object
        if job.access_revoked_at:
            return [gettext("The download was already revoked: nothing will change.")]
        return [
            gettext("The download link stops working now; the order stays “Completed”."),
            gettext("The file is deleted by the next cleanup."),
            gettext("Regenerating the delivery gives the customer access again."),
            gettext("The reason is kept in the order's event log; the customer is not emailed."),
        ]

    def run(self, data):
        job = operations.revoke(self.object.pk, reason=data["reason"], actor=self.request.user)
        return gettext("The download was revoked.") if job.access_revoked_at else None


class ResolveView(OrderActionView):
    operation = RESOLVE
    name = "resolve"
    label = _("Mark resolved")
    summary = _("Record how the order was settled outside the system.")
    submit_label = _("Mark resolved")
    form_class = ResolveForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "job": self.object}

    def consequences(self):
        job = self.object
        return [
            gettext(
                "Nothing is sent to the payment provider, the upscaler or the customer: this "
                "records what was done outside the system."
            ),
            gettext("Delivered by hand: the order becomes “Completed”."),
            gettext(
                "Refunded outside the system: the order becomes “Refunded” with the amount you "
                "give (empty: %(paid)s, everything that was paid)."
            )
            % {"paid": format_price(job.paid_amount_cents, job.currency)},
        ]

    def run(self, data):
        operations.resolve_by_hand(
            self.object.pk,
            outcome=data["outcome"],
            details=data["reason"],
            amount_cents=data["amount"],
            actor=self.request.user,
        )
        if data["outcome"] == DELIVERED_BY_HAND:
            return gettext("Marked as delivered by hand.")
        return gettext("Marked as refunded outside the system.")


class TakeInHandView(OrderActionView):
    operation = TAKE_IN_HAND
    name = "take_in_hand"
    label = _("Take in hand")
    summary = _("You answer for this order: it is no longer refunded automatically.")
    submit_label = _("Yes, I take it in hand")

    @classmethod
    def is_offered(cls, job: PurchaseJob) -> bool:
        return super().is_offered(job) and not job.taken_in_hand_at

    def consequences(self):
        return [
            gettext(
                "The order is no longer refunded automatically when it is late: you deliver "
                "it (retry, regenerate, mark resolved) or refund it."
            ),
            gettext("Your name and the time are recorded on the order and in its event log."),
            gettext("Nothing is sent to the customer."),
        ]

    def run(self, data):
        operations.take_in_hand(self.object.pk, actor=self.request.user)
        return gettext("You have taken this order in hand.")


#: Every order action, in the order the order's page lists them.
ORDER_ACTIONS: list[type[OrderActionView]] = [
    TakeInHandView,
    RetryView,
    ResendLinkView,
    RedeliverView,
    RevokeView,
    RefundView,
    ResolveView,
]


def offered_actions(job: PurchaseJob) -> list[type[OrderActionView]]:
    """The actions the state table allows for this order now."""
    return [action for action in ORDER_ACTIONS if action.is_offered(job)]
