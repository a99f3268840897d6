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

  // htmx sends the CSRF token of the cookie as it is now, not as it was when the page loaded: logging in
  // again in another tab rotates it, and a form opened before must still be able to save its work.
  function csrfCookie() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }
  // Shared with the page scripts loaded after this one (workspace.js, compare.js).
  window.enclave = {
    csrfToken: csrfCookie,
    // Whether the keys go into a text field (so they type, not choose).
    typing: function () {
      var el = document.activeElement;
      return !!el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"));
    },
  };

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfCookie();
    if (!token) return;
    event.detail.headers["X-CSRFToken"] = token;
    if (event.detail.parameters["csrfmiddlewaretoken"] !== undefined) {
      event.detail.parameters["csrfmiddlewaretoken"] = token;
    }
  });

  // A request that fails says what happened and what to do; nothing on the page is swapped away, so what
  // the user typed stays where it is.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 401) {
      var login = xhr.getResponseHeader("X-Login-Url") || "/login/";
      showNotice("You are signed out (the session ended, or you logged out in another tab). Your work on this " +
        "page is still here: log in again in a new tab, then come back and submit.", "error",
        { href: login, text: "Log in in a new tab" });
    } else if (xhr.status === 403) {
      showNotice("The server refused this (403). What you typed is still on this page: copy it before " +
        "reloading.", "error");
    } else {
      showNotice("The server answered " + xhr.status + ". What you typed is still on this page; try again.",
        "error");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    showNotice("Enclave could not be reached. What you typed is still on this page: check the connection " +
      "and try again.", "error");
  });
  // Once a request gets through, the failure notices of earlier attempts are out of date.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) return;
    document.querySelectorAll(".messages [data-client]").forEach(function (item) { item.remove(); });
  });

  function showNotice(text, kind, link) {
    var list = document.querySelector(".messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("role", "status");
      document.getElementById("main").prepend(list);
    }
    var same = Array.prototype.some.call(list.querySelectorAll("[data-client]"), function (item) {
      return item.dataset.text === text;
    });
    if (same) return;  // an autosave and a submit failing alike say it once
    var item = document.createElement("li");
    item.className = "message " + kind;
    item.dataset.client = "1";
    item.dataset.text = text;
    item.textContent = text;
    if (link) {
      var anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.target = "_blank";
      anchor.rel = "noopener";
      anchor.textContent = link.text;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(anchor);
    }
    list.appendChild(item);
    item.scrollIntoView({ block: "nearest" });  // seen even when the failed button is far down the page
  }

  // A box that scrolls (a table on a narrow window, a long prompt) joins the tab order so the keyboard can
  // scroll it (WCAG 2.1.1); it leaves again when the window grows and it no longer scrolls.
  function scrollersFocusable() {
    document.querySelectorAll("main table, main pre, main .conversation, main .candidate-body").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      var overflow = window.getComputedStyle(box);
      scrolls = scrolls && /auto|scroll/.test(overflow.overflowX + overflow.overflowY);
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-focus", "");
      } else if (!scrolls && box.hasAttribute("data-scroll-focus")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-focus");
      }
    });
  }
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(scrollersFocusable, 150);
  });
  document.addEventListener("htmx:afterSettle", scrollersFocusable);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scrollersFocusable);
  else scrollersFocusable();
})();
