/* Live price preview on the Sell My Images settings page.
 * Posts the form's current (unsaved) values to the server, which reads them with the
 * settings form itself and prices them with the same quote function as the dialog and
 * checkout: the preview always equals what checkout will charge. Each row is a size (the
 * chosen library image first, then two sample sizes), a resolution and a licence (the
 * default licence first), with the price, what the copy costs to make, the margin, and
 * where the price came from. */
(function () {
  'use strict';

  function cell(row, text, className) {
    var td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function sizeText(sample) {
    var size = sample.width + ' × ' + sample.height;
    return sample.image ? sample.image.title + ' (' + size + ')' : size;
  }

  function render(box, data) {
    var out = box.querySelector('[data-smi-price-preview-output]');
    var note = box.querySelector('[data-smi-price-preview-note]');
    if (note) note.textContent = data.cost_note || '';
    out.textContent = '';
    var table = document.createElement('table');
    table.className = 'listing smi-price-preview__table';
    var head = table.createTHead().insertRow();
    [box.dataset.labelSize, box.dataset.labelResolution, box.dataset.labelOutput,
      box.dataset.labelPrice, box.dataset.labelCost, box.dataset.labelMargin,
      box.dataset.labelLicence, box.dataset.labelSource].forEach(function (text) {
      var th = document.createElement('th');
      th.scope = 'col';
      th.textContent = text;
      head.appendChild(th);
    });
    var body = table.createTBody();
    data.samples.forEach(function (sample) {
      sample.quotes.forEach(function (q, quoteIndex) {
        // Without licences (none sold with this resolution) the quote is one row.
        var licences = q.licences.length ? q.licences : [{
          key: '', name: '', price_display: q.price_display, margin_display: q.margin_display,
          margin_cents: q.margin_cents, price_cents: q.price_cents,
        }];
        licences.forEach(function (licence, index) {
          var row = body.insertRow();
          row.dataset.size = sample.width + 'x' + sample.height;
          if (sample.image) row.dataset.image = sample.image.id;
          row.dataset.resolution = q.key;
          row.dataset.licence = licence.key;
          row.dataset.priceCents = licence.price_cents;
          var first = index === 0;
          if (!first) row.className = 'smi-price-preview__more';
          cell(row, first && quoteIndex === 0 ? sizeText(sample) : '');
          cell(row, first ? q.label + ' (' + q.factor + '×)' : '');
          cell(row, first ? q.output_width + ' × ' + q.output_height : '');
          cell(row, licence.price_display + (q.available ? '' : ' — ' + q.reason));
          cell(row, q.cost_display);
          var loss = licence.margin_cents < 0;
          cell(row, licence.margin_display + (loss ? ' (' + box.dataset.labelLoss + ')' : ''),
            loss ? 'smi-negative' : '');
          cell(row, licence.name);
          cell(row, first ? q.price_source_label : '');
        });
      });
    });
    out.appendChild(table);
  }

  function setup(box) {
    var form = box.closest('form');
    if (!form) return;
    var timer = null;
    var asked = 0;
    var status = box.querySelector('[data-smi-price-preview-status]');
    var chooser = box.querySelector('[data-smi-price-preview-image]');
    function refresh() {
      var mine = ++asked;
      var body = new FormData(form);
      if (chooser && chooser.value) body.append('preview_image', chooser.value);
      fetch(box.dataset.url, {
        method: 'POST', body: body, credentials: 'same-origin',
        headers: {'Accept': 'application/json'},
      })
        .then(function (response) {
          return response.json().then(function (data) { return {ok: response.ok, data: data}; });
        })
        .then(function (result) {
          if (mine !== asked) return; // an older answer, overtaken by a newer question
          if (result.ok) {
            status.textContent = '';
            render(box, result.data);
          } else {
            status.textContent = result.data.message + ' (' + result.data.field + ')';
          }
        })
        .catch(function () { if (mine === asked) status.textContent = box.dataset.labelError; });
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    }
    form.addEventListener('input', schedule);
    form.addEventListener('change', schedule);
    // StreamField blocks added, removed or moved change the form without an input event.
    // (Changes inside the preview itself are its own answers, not the form's.)
    new MutationObserver(function (records) {
      if (records.some(function (r) { return !box.contains(r.target); })) schedule();
    }).observe(form, {childList: true, subtree: true});
    refresh();
  }

  function init() {
    document.querySelectorAll('[data-smi-price-preview]').forEach(setup);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
