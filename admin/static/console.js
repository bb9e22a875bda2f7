// The console's own behaviour, shared by every page: confirmations, the CSRF header for htmx requests, and
// "focus the first field of a form that a key opened". Pages add theirs in their own file.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]');
  document.body.addEventListener("htmx:configRequest", (e) => {
    if (csrf) e.detail.headers["X-CSRF-Token"] = csrf.content;
    // a refresh the page makes by itself is not the person using it: it must not keep an idle session alive
    if ((e.detail.elt.getAttribute("hx-trigger") || "").startsWith("every")) e.detail.headers["X-Console-Poll"] = "1";
  });
  document.addEventListener("submit", (e) => {
    const message = e.target.dataset.confirm;
    if (message && !window.confirm(message)) e.preventDefault();
  });
})();
