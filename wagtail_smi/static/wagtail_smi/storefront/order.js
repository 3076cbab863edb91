/* wagtail-smi order status page: polls job-status with backoff and updates the page.
 *
 * Steps in progress (paid, upscaling, delivering) are updated in place. When the order
 * settles or runs into a problem (ready, expired, refunded...), the page is loaded again
 * once, so that what it shows is the server's own rendering: the Download button with its
 * expiry in the site's time zone and format, or the "email me a fresh link" form.
 * Without JavaScript a <noscript> refresh does the same job.
 */
(function () {
  "use strict";
  var root = document.querySelector(".smi-order[data-status-url]");
  if (!root) return;

  // What each stage means comes from the server (wagtail_smi.progress.STAGES).
  var table = JSON.parse(document.getElementById("smi-stage-table").textContent);
  var STAGES = table.steps;
  function fact(stage, name) { return Boolean(table.stages[stage] && table.stages[stage][name]); }
  var MAX_TIMER = 2147483647; // setTimeout's longest wait (about 24 days)
  var delay = 2000;          // first poll after 2 s...
  var MAX_DELAY = 30000;     // ...backing off to every 30 s
  var progress = root.querySelector(".smi-progress");
  var message = root.querySelector(".smi-message");
  var shownStage = root.dataset.stage; // what the server rendered
  var lastStage = null;

  function settles(stage) { return fact(stage, "final") || fact(stage, "problem"); }

  function render(data) {
    var index = STAGES.indexOf(data.stage);
    root.querySelectorAll(".smi-stages li").forEach(function (li, i) {
      var current = i === index;
      li.classList.toggle("is-current", current);
      li.classList.toggle("is-done", (index >= 0 && i < index) || fact(data.stage, "delivered"));
      if (current) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    });
    if (progress) {
      progress.hidden = fact(data.stage, "problem");
      progress.value = data.progress;
      progress.textContent = data.progress + "%";
    }
    if (message && message.textContent !== data.message) message.textContent = data.message;
  }

  function poll() {
    fetch(root.dataset.statusUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 429) {
          var wait = parseInt(response.headers.get("Retry-After"), 10);
          delay = Math.min(Math.max(delay, (wait || 10) * 1000), 60000);
          throw new Error("rate limited");
        }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data.stage !== shownStage && settles(data.stage)) {
          window.location.reload();
          return;
        }
        render(data);
        if (data.stage === "ready") watchExpiry(data.expires_at);
        if (fact(data.stage, "final")) return;
        // Back off while nothing changes; poll briskly again when the stage moves.
        delay = data.stage === lastStage ? Math.min(delay * 1.5, MAX_DELAY) : 2000;
        lastStage = data.stage;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, MAX_DELAY);
        window.setTimeout(poll, delay);
      });
  }

  // A ready page asks once more when the link expires, so the button does not outlive it.
  // Checked against the server's clock: if the browser's runs ahead, ask again a minute on.
  function watchExpiry(iso) {
    var left = Date.parse(iso || "") - Date.now();
    if (isNaN(left) || left >= MAX_TIMER) return;
    window.setTimeout(poll, left > 0 ? left + 1000 : 60000);
  }

  if (root.dataset.final === "1") {
    if (root.dataset.stage === "ready") watchExpiry(root.dataset.expiresAt);
    return;
  }
  window.setTimeout(poll, delay);
})();
