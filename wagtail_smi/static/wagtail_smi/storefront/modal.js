/* wagtail-smi purchase modal: vanilla JavaScript, no build step.
 *
 * Every `.smi-get-button` is a real link to the server-rendered purchase page; this
 * script turns a plain click on one into an accessible <dialog> that loads the prices
 * from the server, shows what each option delivers, lets the visitor choose a resolution
 * and a licence, and sends them to the payment page.
 * Strings and endpoints come from the JSON in #smi-config (translated by Django).
 *
 * Layout: a header (title, close), a body that scrolls, and a footer that never does, with
 * the status line and "Continue to payment": on a small phone the call to action stays on
 * screen however long the options are.
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
    dialog.appendChild(el("div", { className: "smi-dialog__footer" }, [
      el("p", { className: "smi-status", role: "status", "aria-live": "polite" }),
    ]));
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
  function footer() { return dialog.querySelector(".smi-dialog__footer"); }

  function setStatus(text, kind) {
    var status = dialog.querySelector(".smi-status");
    status.textContent = text || "";
    status.className = "smi-status" + (kind ? " smi-status--" + kind : "");
  }

  function product(button) {
    // The whole picture, never cropped: what is bought is what is shown.
    var title = button.dataset.title || "";
    return el("div", { className: "smi-product" }, [
      button.dataset.src ? el("img", {
        className: "smi-preview", src: button.dataset.src, alt: "",
        width: button.dataset.width, height: button.dataset.height,
      }) : null,
      el("div", { className: "smi-product__text" }, [
        title ? el("p", { className: "smi-product__title", text: title }) : null,
        button.dataset.width ? el("p", {
          className: "smi-product__original",
          text: format(S.original, { w: number(button.dataset.width), h: number(button.dataset.height) }),
        }) : null,
        el("p", { className: "smi-intro", text: S.intro }),
      ]),
    ]);
  }

  function open(button) {
    if (!dialog) build();
    opener = button;
    current = { imageId: parseInt(button.dataset.imageId, 10), pageId: parseInt(button.dataset.pageId, 10) };
    var b = body();
    b.textContent = "";
    b.appendChild(product(button));
    var oldSubmit = footer().querySelector(".smi-submit");
    if (oldSubmit) oldSubmit.remove();
    setStatus(S.loading, "busy");
    dialog.setAttribute("aria-busy", "true");
    if (!dialog.open) dialog.showModal();
    b.scrollTop = 0;
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

  // --- the form -------------------------------------------------------------------------

  function defaultLicence(licences) {
    var found = licences.filter(function (l) { return l["default"]; })[0];
    return found || licences[0] || null;
  }

  // The price of an option under a licence: the server's figure, never computed here.
  function priceFor(data, option, licenceKey) {
    var cents = option.price_cents;
    var display = option.price_display;
    var prices = option.licence_prices || {};
    if (licenceKey && licenceKey in prices) {
      cents = prices[licenceKey];
      var displays = option.licence_prices_display || {};
      display = displays[licenceKey] || display;
      if (!displays[licenceKey] && cents !== option.price_cents) display = money(cents, data.currency);
    }
    return { cents: cents, display: display };
  }

  function money(cents, currency) {
    var digits = (config.currencyDigits || {})[currency];
    if (digits === undefined) digits = 2;
    try {
      return (cents / Math.pow(10, digits)).toLocaleString(document.documentElement.lang || undefined, {
        style: "currency", currency: currency.toUpperCase(),
      });
    } catch (e) { return String(cents); }
  }

  function resolutionOption(data, key, preferred) {
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
    var file = option.file || {};
    var detail = el("span", { className: "smi-option__detail", id: detailId }, [
      option.description ? el("span", { className: "smi-option__description", text: option.description }) : null,
      el("span", { className: "smi-option__size", text: size }),
      file.print_display ? el("span", { className: "smi-option__print", text: file.print_display }) : null,
      file.file_display ? el("span", { className: "smi-option__file", text: file.file_display }) : null,
      option.available ? null : el("span", { className: "smi-option__reason", text: S.unavailable + ": " + option.reason }),
      el("span", { className: "smi-option__reason smi-option__licence-note", hidden: true }),
    ]);
    return el("div", { className: "smi-option" + (option.available ? "" : " smi-option--unavailable") }, [
      input,
      el("label", { "for": id }, [
        el("span", { className: "smi-option__label", text: option.label }),
        el("span", { className: "smi-option__price", "data-price-cents": String(option.price_cents), text: option.price_display }),
        detail,
      ]),
    ]);
  }

  function licenceChoice(licences, chosen) {
    var fieldset = el("fieldset", { className: "smi-options smi-licences" }, [el("legend", { text: S.chooseLicence })]);
    licences.forEach(function (licence) {
      var id = "smi-lic-" + (++idCounter);
      var summaryId = id + "-summary";
      fieldset.appendChild(el("div", { className: "smi-licence" }, [
        el("input", {
          type: "radio", name: "licence", value: licence.key, id: id,
          checked: licence.key === chosen.key, "aria-describedby": licence.summary ? summaryId : null,
        }),
        el("label", { "for": id }, [
          el("span", { className: "smi-licence__name", text: licence.name }),
          licence.summary ? el("span", { className: "smi-licence__summary", id: summaryId, text: licence.summary }) : null,
        ]),
      ]));
    });
    var terms = licenceTerms();
    fieldset.appendChild(terms.node);
    return { node: fieldset, terms: terms };
  }

  // The terms of the licence chosen, in one place whatever the number of licences (one tab
  // stop): a link to the page that holds them, or the text itself, folded.
  function licenceTerms() {
    var link = el("a", { className: "smi-licence__terms", target: "_blank", rel: "noopener" });
    var summary = el("summary", {});
    var text = el("div", { className: "smi-licence__text" });
    var details = el("details", { className: "smi-licence__details" }, [summary, text]);
    var node = el("div", { className: "smi-licence__more" }, [el("p", { className: "smi-licence__link" }, [link]), details]);
    return { node: node, link: link, details: details, summary: summary, text: text };
  }

  function showLicenceTerms(terms, licence) {
    var label = format(S.licenceTerms, { name: licence.name });
    terms.link.parentNode.hidden = !licence.terms_url;
    terms.details.hidden = !!licence.terms_url || !licence.terms_html;
    if (licence.terms_url) {
      terms.link.textContent = label;
      terms.link.href = licence.terms_url;
    } else {
      terms.link.removeAttribute("href");
      terms.summary.textContent = label;
      // The site's own rich text (written in the admin), as the no-JS page shows it too.
      terms.text.innerHTML = licence.terms_html || "";
      terms.details.open = false;
    }
  }

  function renderForm(data) {
    var formId = "smi-form-" + (++idCounter);
    var form = el("form", { className: "smi-form", id: formId, novalidate: true });
    var fieldset = el("fieldset", { className: "smi-options smi-resolutions" }, [el("legend", { text: S.choose })]);
    var keys = Object.keys(data.pricing);
    var preferred = keys.filter(function (k) { return k === config.defaultResolution && data.pricing[k].available; })[0] ||
      keys.filter(function (k) { return data.pricing[k].available; })[0];
    keys.forEach(function (key) { fieldset.appendChild(resolutionOption(data, key, preferred)); });
    form.appendChild(fieldset);

    var licences = data.licences || [];
    var chosenLicence = defaultLicence(licences);
    var terms = null;
    if (licences.length > 1) {
      var choice = licenceChoice(licences, chosenLicence);
      terms = choice.terms;
      form.appendChild(choice.node);
    } else if (chosenLicence) {
      // One licence: nothing to choose, but the buyer still learns what they may do.
      terms = licenceTerms();
      form.appendChild(el("div", { className: "smi-licence-single" }, [
        el("p", {}, [el("strong", { text: format(S.licenceOne, { name: chosenLicence.name }) })]),
        chosenLicence.summary ? el("p", { className: "smi-licence__summary", text: chosenLicence.summary }) : null,
        terms.node,
      ]));
    }

    var emailId = "smi-email-" + (++idCounter);
    form.appendChild(el("div", { className: "smi-field" }, [
      el("label", { "for": emailId, text: S.email }),
      el("input", { type: "email", id: emailId, name: "email", autocomplete: "email", "aria-describedby": emailId + "-help" }),
      el("small", { id: emailId + "-help", text: S.emailHelp }),
    ]));
    var waiver = data.withdrawal_waiver || {};
    if (waiver.required) {
      var waiverId = "smi-waiver-" + (++idCounter);
      form.appendChild(el("div", { className: "smi-field smi-field--check smi-waiver" }, [
        el("input", { type: "checkbox", id: waiverId, name: "waive_withdrawal", required: true }),
        el("label", { "for": waiverId, text: waiver.text }),
      ]));
    }
    if (config.termsUrl) {
      var termsId = "smi-terms-" + (++idCounter);
      form.appendChild(el("div", { className: "smi-field smi-field--check" }, [
        el("input", { type: "checkbox", id: termsId, name: "terms_accepted", required: true }),
        el("label", { "for": termsId, text: S.terms }),
        el("a", { href: config.termsUrl, target: "_blank", rel: "noopener", text: S.termsLink }),
      ]));
    }
    var submit = el("button", { type: "submit", form: formId, className: "smi-submit", text: S.submit, disabled: !preferred });
    form.addEventListener("submit", function (event) { event.preventDefault(); checkout(form, submit); });

    // Prices, and which resolutions can be had, follow the licence chosen.
    function updatePrices() {
      var picked = form.querySelector("input[name=licence]:checked");
      var key = picked ? picked.value : (chosenLicence && chosenLicence.key);
      var licence = licences.filter(function (l) { return l.key === key; })[0];
      keys.forEach(function (resolution) {
        var option = data.pricing[resolution];
        var input = fieldset.querySelector("input[value='" + resolution + "']");
        if (!input) return;
        var wrapper = input.parentNode;
        var price = priceFor(data, option, key);
        var node = wrapper.querySelector(".smi-option__price");
        node.textContent = price.display;
        node.setAttribute("data-price-cents", String(price.cents));
        var sold = !licence || !option.licence_prices || !Object.keys(option.licence_prices).length ||
          key in option.licence_prices;
        var note = wrapper.querySelector(".smi-option__licence-note");
        note.textContent = sold ? "" : format(S.notWithLicence, { name: licence.name });
        note.hidden = sold;
        input.disabled = !option.available || !sold;
        wrapper.classList.toggle("smi-option--unavailable", input.disabled);
      });
      var current = fieldset.querySelector("input[name=resolution]:checked");
      if (!current || current.disabled) {
        if (current) current.checked = false;
        var next = fieldset.querySelector("input[name=resolution]:not([disabled])");
        if (next) next.checked = true;
      }
      submit.disabled = !fieldset.querySelector("input[name=resolution]:checked");
      if (licence && terms) showLicenceTerms(terms, licence);
    }
    form.addEventListener("change", function (event) {
      if (event.target.name === "licence") updatePrices();
    });

    var shownTitle = body().querySelector(".smi-product__title");
    if (data.image && data.image.title && !shownTitle) {
      var text = body().querySelector(".smi-product__text");
      if (text) text.insertBefore(el("p", { className: "smi-product__title", text: data.image.title }), text.firstChild);
    }
    body().appendChild(form);
    footer().appendChild(submit);
    updatePrices();
    setStatus(preferred ? "" : S.noneAvailable, preferred ? "" : "error");
  }

  function checkout(form, submit) {
    var chosen = form.querySelector("input[name=resolution]:checked");
    var licence = form.querySelector("input[name=licence]:checked");
    var terms = form.querySelector("input[name=terms_accepted]");
    if (!chosen) return;
    var waiver = form.querySelector("input[name=waive_withdrawal]");
    if (waiver && !waiver.checked) { setStatus(S.waiverRequired, "error"); waiver.focus(); return; }
    if (terms && !terms.checked) { setStatus(S.termsRequired, "error"); terms.focus(); return; }
    var email = form.querySelector("input[name=email]");
    submit.disabled = true;
    setStatus(S.submitting, "busy");
    var payload = {
      image_id: current.imageId, page_id: current.pageId, resolution: chosen.value,
      email: email.value.trim(), terms_accepted: terms ? terms.checked : false,
    };
    if (licence) payload.licence = licence.value;
    if (waiver) payload.waive_withdrawal = waiver.checked;
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
