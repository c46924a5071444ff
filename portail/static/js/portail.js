// Portail Famille: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

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

  // Move focus to the error summary so screen-reader and keyboard users land on the errors.
  function focusErrors(root) {
    var summary = root.querySelector(".error-summary");
    if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () { focusErrors(document); });
  document.addEventListener("htmx:afterSwap", function (event) { focusErrors(event.detail.target.parentNode || document); });

  // htmx does not swap 4xx answers by default: our 422 answers carry the form with its errors.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
