/* Pointage: each tap is sent at once by htmx; a tap the network did not take is kept (in the page
   and in localStorage, with the time it was tapped) and sent again every few seconds and when the
   network comes back, its row saying "Non envoyé" meanwhile. The server keeps the latest tap, so a
   mark sent twice or late never undoes a newer one. */
(function () {
  "use strict";
  // (one queue per account on a shared tablet: the page names it)
  var box = document.getElementById("file-attente");
  var KEY = "portail-pointage-" + ((box && box.getAttribute("data-compte")) || "");
  var RETRY_MS = 5000;
  var LABELS = { present: "Présent", unexcused: "Absent", excused: "Absence justifiée" };
  var sending = false;

  function queue() {
    try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  function save(items) {
    try { localStorage.setItem(KEY, JSON.stringify(items)); } catch (e) { /* private mode: page only */ }
    memory = items;
  }
  var memory = queue();
  function pending() { return memory; }

  function rowOf(url) {
    var forms = document.querySelectorAll("form.register-mark");
    for (var i = 0; i < forms.length; i++) {
      if (forms[i].getAttribute("action") === url) return forms[i].closest("li");
    }
    return null;
  }

  function showWaiting() {
    var count = pending().length;
    if (!box) return;
    box.hidden = count === 0;
    box.textContent = count ? count + " pointage(s) non envoyé(s) : ils seront renvoyés dès que le réseau revient." : "";
    pending().forEach(function (item) {
      var row = rowOf(item.url);
      if (!row) return;
      row.classList.add("unsent");
      var sync = row.querySelector(".register-sync");
      if (sync) { sync.hidden = false; sync.textContent = (LABELS[item.presence] || "Pointage") + " : non envoyé"; }
      row.querySelectorAll("button.mark").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.value === item.presence || (item.presence === "excused" && button.value === "unexcused")));
      });
    });
  }

  function keep(url, params) {
    var items = pending().filter(function (item) { return item.url !== url; });
    items.push({ url: url, body: params.toString(), presence: params.get("presence") });
    save(items);
    showWaiting();
  }

  function token() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  // One pass over the kept marks, one at a time, in the order tapped; a mark not taken stays for the
  // next pass and does not hold back the others.
  function resend() {
    if (sending || !pending().length) return;
    sending = true;
    sendFrom(pending().slice(), 0);
  }

  function sendFrom(items, index) {
    if (index >= items.length) { sending = false; showWaiting(); return; }
    var item = items[index];
    var body = new URLSearchParams(item.body);
    body.set("csrf_token", token());  // (the page's token: the one kept may be of an ended session)
    fetch(item.url, {
      method: "POST",
      body: body.toString(),
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true", "X-CSRFToken": token() }
    }).then(function (response) {
      return response.text().then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html;
        var fresh = holder.content.querySelector("li.register-row");
        // Kept unless the register answered for this row: saved (200), or refused with its reason (422,
        // e.g. closed meanwhile). A login page (the session ended), an error or a redirect: sent again later.
        if (!fresh || response.redirected || (response.status !== 200 && response.status !== 422)) {
          throw new Error("not taken");
        }
        save(pending().filter(function (other) { return other.url !== item.url || other.body !== item.body; }));
        var row = rowOf(item.url);
        var counts = holder.content.querySelector("#compteurs");
        if (row && fresh) {
          row.replaceWith(fresh);
          if (window.htmx) window.htmx.process(fresh);
          if (response.status === 422) {  // refused (e.g. the register was closed meanwhile): say which tap was lost
            var lost = fresh.querySelector(".register-sync");
            if (lost) { lost.hidden = false; lost.textContent = (LABELS[item.presence] || "Pointage") + " : non enregistré"; }
          }
        }
        var shown = document.getElementById("compteurs");
        if (counts && shown) {
          counts.removeAttribute("hx-swap-oob");
          shown.replaceWith(counts);
        }
        sendFrom(items, index + 1);
      });
    }).catch(function () { sendFrom(items, index + 1); });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!form.classList || !form.classList.contains("register-mark")) return;
    event.detail.parameters.tapped = String(Date.now());
  });
  document.addEventListener("htmx:sendError", function (event) {
    var form = event.detail.elt;
    if (!form.classList || !form.classList.contains("register-mark")) return;
    var config = event.detail.requestConfig || {};
    var params = new URLSearchParams();
    var values = config.formData || config.parameters;
    if (values && values.forEach) {
      values.forEach(function (value, name) { params.append(name, value); });
    }
    if (!params.get("tapped")) params.set("tapped", String(Date.now()));
    keep(form.getAttribute("action"), params);
  });
  window.addEventListener("online", resend);
  setInterval(resend, RETRY_MS);
  document.addEventListener("DOMContentLoaded", function () { showWaiting(); resend(); });
})();
