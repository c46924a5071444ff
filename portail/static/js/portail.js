// Portail Famille: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // The planning opens on the agenda on a phone, on the month elsewhere: the server reads the width here
  // (a hint, not a secret: the one cookie script can read; Secure as the session's over HTTPS).
  document.cookie = "ecran=" + (window.matchMedia("(max-width: 37.5rem)").matches ? "etroit" : "large") +
    "; path=/; max-age=31536000; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");

  // A cell's action (Réserver…) opens its confirmation in place; its link is the page without JavaScript.
  // (one listener rather than an hx-get on each of a month's links: the page is lighter)
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.cell-action");
    if (!link || !window.htmx || event.ctrlKey || event.metaKey || event.shiftKey || event.button) { return; }
    event.preventDefault();
    window.htmx.ajax("GET", link.getAttribute("href"), { source: link, target: link.closest(".cell"), swap: "outerHTML" });
  });

  // Escape in a planning confirmation cancels it (its Annuler link swaps the cell back, focus on it).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) { return; }
    var confirm = event.target.closest(".cell-confirm");
    var cancel = confirm && confirm.querySelector("[data-cancel]");
    if (cancel && confirm.querySelector("[hx-post]")) {
      event.preventDefault();
      cancel.click();
    }
  });

  // Planning switches apply at once when JavaScript is there (the Appliquer button stays for others).
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form.switches");
    if (form) { form.requestSubmit(); }
  });

  // "Tout sélectionner" boxes (data-select-all="name") tick every box of that name in their form.
  document.addEventListener("change", function (event) {
    var name = event.target.getAttribute && event.target.getAttribute("data-select-all");
    if (!name) { return; }
    event.target.form.querySelectorAll("input[type=checkbox][name='" + name + "']").forEach(function (box) {
      box.checked = event.target.checked;
    });
  });

  // An answer that removes the part holding the focus (a payment's actions, once the bank has
  // answered) gives the focus to the answer (its [data-focus-answer], tabindex=-1): never lost to the page.
  var focusWasIn = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.target.contains(document.activeElement)) { focusWasIn = event.detail.target; }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusWasIn) { return; }
    focusWasIn = null;
    var answer = document.querySelector("[data-focus-answer]");
    if (answer && (!document.activeElement || document.activeElement === document.body)) { answer.focus(); }
  });

  // A planning cell on a waiting list (its data-vu: what it shows, its id: cell-child-activity-day) is
  // asked again every minute and when the page is shown again; the server answers 204 while it is the
  // same, else the new cell (announced in #annonce). One timer for the page rather than one per cell.
  function refreshLiveCells() {
    var planning = document.getElementById("planning");
    if (!planning || !window.htmx || document.hidden) { return; }
    var base = planning.getAttribute("data-cellule");
    var cells = planning.querySelectorAll(".cell[data-vu]");
    var annonce = document.getElementById("annonce");
    if (cells.length && annonce) { annonce.textContent = ""; }  // (each cell changed adds its line)
    cells.forEach(function (cell) {
      var parts = cell.id.split("-");
      window.htmx.ajax("GET", base + "?enfant=" + parts[1] + "&activite=" + parts[2] + "&jour=" +
        parts.slice(3).join("-") + "&vu=" + encodeURIComponent(cell.getAttribute("data-vu")),
        { source: cell, target: cell, swap: "outerHTML" });
    });
  }
  window.setInterval(refreshLiveCells, 60000);
  document.addEventListener("visibilitychange", refreshLiveCells);

  // A planning cell swapped by its live refresh (a waiting list's rank or offer) while the focus was in
  // it keeps the focus: on its first action, else on the cell itself.
  var cellWithFocus = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target.classList && target.classList.contains("cell") && target.contains(document.activeElement)) {
      cellWithFocus = target.id;
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!cellWithFocus) { return; }
    var cell = document.getElementById(cellWithFocus);
    cellWithFocus = null;
    if (!cell || cell.contains(document.activeElement)) { return; }
    var action = cell.querySelector(".cell-action");
    if (!action) { cell.setAttribute("tabindex", "-1"); }
    (action || cell).focus({ preventScroll: true });  // (the parent may have scrolled away: stay there)
  });

  // A planning cell swapped in by the parent's action (a confirmation, the new state) starts below the
  // sticky period bar: its question or its state must not hide under the bar (on a phone, a long
  // confirmation opened low on the screen did). A live refresh (`vu=`) never moves the page.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    var cell = target && target.id && document.getElementById(target.id);
    var bar = document.querySelector(".planning-bar");
    var path = event.detail.pathInfo ? event.detail.pathInfo.requestPath : "";
    if (!cell || !bar || !cell.classList.contains("cell") || /[?&]vu=/.test(path) ||
        !cell.contains(document.activeElement)) { return; }
    var top = cell.getBoundingClientRect().top, below = bar.getBoundingClientRect().bottom;
    if (top < below) { window.scrollBy(0, top - below - 8); }
  });

  // Move focus to the error summary so screen-reader and keyboard users land on the errors.
  function focusErrors(root) {
    var summary = root.querySelector(".error-summary");
    if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () { focusErrors(document); });
  // Only in what was swapped in (a form replaced whole comes back under the same id): a preview swapped
  // beside an older summary must not pull the focus away from the field being filled in.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    var root = target.isConnected ? target : (target.id && document.getElementById(target.id));
    if (root) { focusErrors(root); }
    var form = root && root.closest && root.closest("form[data-errors-follow]");
    if (form) { followErrors(form); }
  });

  // A form whose error summary is refreshed by its previews (data-errors-follow): the fields no longer
  // named by the summary lose their error mark and message.
  function followErrors(form) {
    var summary = document.querySelector(".error-summary");
    var named = summary ? Array.prototype.map.call(summary.querySelectorAll("a[href^='#']"), function (link) {
      return link.getAttribute("href").slice(1);
    }) : [];
    form.querySelectorAll(".field-error").forEach(function (box) {
      var field = box.id ? box : box.querySelector("[id]");
      if (field && named.indexOf(field.id) < 0) {
        box.classList.remove("field-error");
        box.querySelectorAll(".error-message").forEach(function (message) { message.remove(); });
      }
    });
  }

  // htmx does not swap 4xx answers by default: our 422 answers carry the form with its errors.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
