/* Live price preview on the Sell My Images settings page.
 * Sends the form's current (unsaved) values to the server, which prices them with
 * wagtail_smi.pricing: the preview always equals what checkout will charge. */
(function () {
  'use strict';
  var FIELDS = ['currency', 'cost_per_credit', 'credits_per_megapixel', 'markup_percent',
    'minimum_price_cents', 'max_output_megapixels'];

  function value(form, name) {
    var el = form.elements.namedItem(name);
    if (!el) return null;
    if (el.type === 'checkbox') return el.checked ? '1' : '0';
    return el.value;
  }

  function resolutionParams(form) {
    var items = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      var m = /^resolutions-(\d+)-value-key$/.exec(el.name || '');
      if (!m) return;
      var prefix = 'resolutions-' + m[1];
      if (value(form, prefix + '-deleted') === '1') return;
      items.push({
        order: parseInt(value(form, prefix + '-order') || m[1], 10),
        text: [el.value, value(form, prefix + '-value-factor') || '',
          value(form, prefix + '-value-enabled') === '1' ? '1' : '0',
          value(form, prefix + '-value-label') || ''].join(':'),
      });
    });
    items.sort(function (a, b) { return a.order - b.order; });
    return items.map(function (item) { return item.text; });
  }

  function render(box, data) {
    var out = box.querySelector('[data-smi-price-preview-output]');
    out.textContent = '';
    var table = document.createElement('table');
    var head = table.createTHead().insertRow();
    [box.dataset.labelSize, box.dataset.labelResolution, box.dataset.labelOutput, box.dataset.labelPrice]
      .forEach(function (text) {
        var th = document.createElement('th');
        th.scope = 'col';
        th.textContent = text;
        head.appendChild(th);
      });
    var body = table.createTBody();
    data.samples.forEach(function (sample) {
      sample.quotes.forEach(function (q) {
        var row = body.insertRow();
        row.dataset.size = sample.width + 'x' + sample.height;
        row.dataset.resolution = q.key;
        [sample.width + ' × ' + sample.height, q.label + ' (' + q.factor + '×)',
          q.output_width + ' × ' + q.output_height,
          q.price_display + (q.available ? '' : ' — ' + q.reason)].forEach(function (text) {
          row.insertCell().textContent = text;
        });
      });
    });
    out.appendChild(table);
  }

  function setup(box) {
    var form = box.closest('form');
    if (!form) return;
    var timer = null;
    var status = box.querySelector('[data-smi-price-preview-status]');
    function refresh() {
      var params = new URLSearchParams();
      FIELDS.forEach(function (name) {
        var v = value(form, name);
        if (v !== null) params.append(name, v);
      });
      resolutionParams(form).forEach(function (item) { params.append('resolution', item); });
      fetch(box.dataset.url + '?' + params.toString(), {credentials: 'same-origin'})
        .then(function (response) {
          return response.json().then(function (data) { return {ok: response.ok, data: data}; });
        })
        .then(function (result) {
          if (result.ok) {
            status.textContent = '';
            render(box, result.data);
          } else {
            status.textContent = result.data.message + ' (' + result.data.field + ')';
          }
        })
        .catch(function () { status.textContent = box.dataset.labelError; });
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    }
    form.addEventListener('input', schedule);
    form.addEventListener('change', schedule);
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
