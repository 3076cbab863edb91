/* wagtail-smi purchase modal: vanilla JavaScript, no build step.
 *
 * Every `.smi-get-button` is a real link to the server-rendered purchase page; this
 * script turns a plain click on one into an accessible <dialog> that loads the prices
 * from the server, lets the visitor choose, and sends them to the payment page.
 * Strings and endpoints come from the JSON in #smi-config (translated by Django).
 */
(function () {
  "use strict";

  if (window.smiModal) return; // included twice: the first copy wins
  var configNode = document.getElementById("smi-config");
  if (!configNode || typeof HTMLDialogElement === "undefined") return; // links keep working

  var config = JSON.parse(configNode.textContent);
  var S = config.strings;
  var csrfPromise = null;
  var dialog = null;
  var opener = null;
  var current = null; // {imageId, pageId}
  var idCounter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return key in values ? values[key] : match;
    });
  }

  function number(n) {
    try { return Number(n).toLocaleString(document.documentElement.lang || undefined); }
    catch (e) { return String(n); }
  }

  function csrfToken() {
    if (!csrfPromise) {
      // A fresh token even when the page came from a full-page cache.
      csrfPromise = fetch(config.endpoints.csrf, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error("csrf"); return r.json(); })
        .then(function (data) { return data.csrf_token; })
        .catch(function (error) { csrfPromise = null; throw error; });
    }
    return csrfPromise;
  }

  function post(url, body) {
    return csrfToken().then(function (token) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json" },
        body: JSON.stringify(body),
      });
    }).then(function (response) {
      if (response.status === 403) csrfPromise = null; // a stale token: fetch a new one next time
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function messageFor(result) {
    if (!result) return S.network;
    if (result.status === 404) return S.notForSale;
    if (result.status === 429) return S.rateLimited;
    if (result.status === 403) return S.error;
    return (result.data && result.data.message) || S.error;
  }

  // --- the dialog -----------------------------------------------------------------------

  function build() {
    var titleId = "smi-title-" + (++idCounter);
    dialog = el("dialog", { className: "smi-dialog", "aria-labelledby": titleId });
    var closeButton = el("button", { type: "button", className: "smi-close", "aria-label": S.close, text: "×" });
    closeButton.addEventListener("click", function () { dialog.close(); });
    dialog.appendChild(el("div", { className: "smi-dialog__header" }, [
      el("h2", { id: titleId, className: "smi-dialog__title", tabindex: "-1", text: S.title }),
      closeButton,
    ]));
    dialog.appendChild(el("div", { className: "smi-dialog__body" }));
    dialog.appendChild(el("p", { className: "smi-status", role: "status", "aria-live": "polite" }));
    dialog.addEventListener("close", function () {
      var target = opener;
      opener = null;
      if (target && document.contains(target)) target.focus();
    });
    // A click on the backdrop (outside the box) closes, like Escape.
    dialog.addEventListener("click", function (event) {
      if (event.target !== dialog) return;
      var box = dialog.getBoundingClientRect();
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
    document.body.appendChild(dialog);
  }

  function body() { return dialog.querySelector(".smi-dialog__body"); }

  function setStatus(text, kind) {
    var status = dialog.querySelector(".smi-status");
    status.textContent = text || "";
    status.className = "smi-status" + (kind ? " smi-status--" + kind : "");
  }

  function open(button) {
    if (!dialog) build();
    opener = button;
    current = { imageId: parseInt(button.dataset.imageId, 10), pageId: parseInt(button.dataset.pageId, 10) };
    var preview = button.dataset.src
      ? el("img", { className: "smi-preview", src: button.dataset.src, alt: "" })
      : null;
    var b = body();
    b.textContent = "";
    if (preview) b.appendChild(preview);
    b.appendChild(el("p", { className: "smi-intro", text: S.intro }));
    setStatus(S.loading, "busy");
    dialog.setAttribute("aria-busy", "true");
    if (!dialog.open) dialog.showModal();
    dialog.querySelector(".smi-dialog__title").focus();

    var ids = { image_id: current.imageId, page_id: current.pageId };
    post(config.endpoints.click, ids).catch(function () {}); // analytics: fire and forget
    var asked = current;
    post(config.endpoints.prices, ids).then(function (result) {
      if (asked !== current || !dialog.open) return;
      dialog.removeAttribute("aria-busy");
      if (!result.ok) { setStatus(messageFor(result), "error"); return; }
      renderForm(result.data);
    }, function () {
      if (asked !== current) return;
      dialog.removeAttribute("aria-busy");
      setStatus(S.network, "error");
    });
  }

  function renderForm(data) {
    var form = el("form", { className: "smi-form", novalidate: true });
    var fieldset = el("fieldset", { className: "smi-options" }, [el("legend", { text: S.choose })]);
    var keys = Object.keys(data.pricing);
    var preferred = keys.filter(function (k) { return k === config.defaultResolution && data.pricing[k].available; })[0] ||
      keys.filter(function (k) { return data.pricing[k].available; })[0];

    keys.forEach(function (key) {
      var option = data.pricing[key];
      var id = "smi-res-" + (++idCounter);
      var detailId = id + "-detail";
      var input = el("input", {
        type: "radio", name: "resolution", value: key, id: id,
        disabled: !option.available, checked: key === preferred, "aria-describedby": detailId,
      });
      var size = format(S.becomes, {
        w: number(data.image.width), h: number(data.image.height),
        ow: number(option.output_width), oh: number(option.output_height),
      });
      var detail = el("span", { className: "smi-option__detail", id: detailId }, [
        option.description ? el("span", { className: "smi-option__description", text: option.description }) : null,
        el("span", { className: "smi-option__size", text: size }),
        option.available ? null : el("span", { className: "smi-option__reason", text: S.unavailable + ": " + option.reason }),
      ]);
      fieldset.appendChild(el("div", { className: "smi-option" + (option.available ? "" : " smi-option--unavailable") }, [
        input,
        el("label", { for: id }, [
          el("span", { className: "smi-option__label", text: option.label }),
          el("span", { className: "smi-option__price", "data-price-cents": String(option.price_cents), text: option.price_display }),
          detail,
        ]),
      ]));
    });
    form.appendChild(fieldset);

    var emailId = "smi-email-" + (++idCounter);
    form.appendChild(el("div", { className: "smi-field" }, [
      el("label", { for: emailId, text: S.email }),
      el("input", { type: "email", id: emailId, name: "email", autocomplete: "email", "aria-describedby": emailId + "-help" }),
      el("small", { id: emailId + "-help", text: S.emailHelp }),
    ]));
    if (config.termsUrl) {
      var termsId = "smi-terms-" + (++idCounter);
      form.appendChild(el("div", { className: "smi-field smi-field--check" }, [
        el("input", { type: "checkbox", id: termsId, name: "terms_accepted", required: true }),
        el("label", { for: termsId, text: S.terms }),
        el("a", { href: config.termsUrl, target: "_blank", rel: "noopener", text: S.termsLink }),
      ]));
    }
    var submit = el("button", { type: "submit", className: "smi-submit", text: S.submit, disabled: !preferred });
    form.appendChild(submit);
    form.addEventListener("submit", function (event) { event.preventDefault(); checkout(form, submit); });

    body().appendChild(form);
    setStatus(preferred ? "" : S.noneAvailable, preferred ? "" : "error");
  }

  function checkout(form, submit) {
    var chosen = form.querySelector("input[name=resolution]:checked");
    var terms = form.querySelector("input[name=terms_accepted]");
    if (!chosen) return;
    if (terms && !terms.checked) { setStatus(S.termsRequired, "error"); terms.focus(); return; }
    var email = form.querySelector("input[name=email]");
    submit.disabled = true;
    setStatus(S.submitting, "busy");
    var payload = {
      image_id: current.imageId, page_id: current.pageId, resolution: chosen.value,
      email: email.value.trim(), terms_accepted: terms ? terms.checked : false,
    };
    post(config.endpoints.checkout, payload).then(function (result) {
      if (result.ok && result.data.checkout_url) {
        window.location.assign(result.data.checkout_url);
        return;
      }
      submit.disabled = false;
      setStatus(messageFor(result), "error");
      var field = result.data && result.data.field;
      var target = field && form.querySelector("[name=" + field + "]");
      if (target) target.focus();
    }, function () {
      submit.disabled = false;
      setStatus(S.network, "error");
    });
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var button = event.target.closest && event.target.closest(".smi-get-button");
    if (!button || !button.dataset.imageId || !button.dataset.pageId) return;
    event.preventDefault();
    open(button);
  });

  window.smiModal = { open: open };
})();
