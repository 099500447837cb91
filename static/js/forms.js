/* Small form behaviours, declared in markup instead of inline handlers (SECURE_CSP allows no
   onchange="…"): a control with [data-submit-on-change] submits its form when it changes (the
   form keeps a <noscript> button). Loaded once from base.html; listens on the document. */
(function () {
  "use strict";
  if (window.nerForms) return;
  window.nerForms = true;

  document.addEventListener("change", function (event) {
    var control = event.target;
    if (control instanceof Element && control.matches("[data-submit-on-change]") && control.form) {
      control.form.requestSubmit();
    }
  });
})();
