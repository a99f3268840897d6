// Small behaviours shared by every page. No inline script anywhere: the CSP allows only our own files.
(function () {
  "use strict";

  // <button data-copy="#selector"> copies the value of that input to the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var done = function () {
      var old = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done);
    } else {
      document.execCommand("copy");
      done();
    }
  });

  // <form data-confirm="…"> asks before it is sent (a deletion, a cancelled run): one click is not enough.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  }, true);

  // A request that fails (server error, network gone) says so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    showNotice("The server answered " + status + ". Nothing was lost; try again.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    showNotice("Enclave could not be reached. Check the connection and try again.", "error");
  });

  function showNotice(text, kind) {
    var list = document.querySelector(".messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("role", "status");
      document.getElementById("main").prepend(list);
    }
    var item = document.createElement("li");
    item.className = "message " + kind;
    item.textContent = text;
    list.appendChild(item);
  }
})();
