// Pages where people judge items (labeling, comparing): time on task, Ctrl+Enter submit, Alt+S skip, and
// number keys for the focused rubric criterion. Everything else (autosave, submit, next item) is htmx.
(function () {
  "use strict";

  var visibleSince = null;
  var base = 0;

  function form() { return document.querySelector("form[data-timed]"); }

  function startClock() {
    var f = form();
    var field = document.getElementById("time-spent");
    base = field ? parseInt(field.value || "0", 10) : 0;
    visibleSince = document.visibilityState === "visible" ? Date.now() : null;
    var answer = document.getElementById("id_response");
    if (f && answer && !f.dataset.focused) { f.dataset.focused = "1"; answer.focus(); }
    document.dispatchEvent(new CustomEvent("workspace:ready"));
    if (f) f.dataset.ready = "1";
  }

  function elapsed() {
    return base + (visibleSince ? Date.now() - visibleSince : 0);
  }

  // Only time the tab is visible counts as time on task.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      visibleSince = Date.now();
    } else if (visibleSince) {
      base += Date.now() - visibleSince;
      visibleSince = null;
    }
  });

  // Every autosave and the submit carry the time spent so far.
  document.addEventListener("htmx:configRequest", function (event) {
    if (form() && form().contains(event.detail.elt)) {
      event.detail.parameters["time_spent_ms"] = String(elapsed());
    }
  });

  // After the settle, when htmx has wired up the new item's autosave triggers.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "workspace") {
      startClock();
      window.scrollTo(0, 0);
    }
  });

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      f.requestSubmit();
      return;
    }
    if (event.altKey && (event.key === "s" || event.key === "S" || event.code === "KeyS")) {
      event.preventDefault();
      var skip = document.getElementById("skip-button");
      if (skip) skip.click();
      return;
    }
    // Number keys score the criterion that has the focus.
    var active = document.activeElement;
    var criterion = active && active.closest ? active.closest(".criterion") : null;
    if (!criterion || !/^[1-9]$/.test(event.key) || event.ctrlKey || event.altKey || event.metaKey) return;
    var options = criterion.querySelectorAll("input[type=radio]");
    var choice = options[parseInt(event.key, 10) - 1];
    if (!choice) return;
    event.preventDefault();
    choice.checked = true;
    choice.focus();
    choice.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // Deferred scripts run before DOMContentLoaded, so page scripts loaded after this one can still listen
  // for "workspace:ready".
  if (document.readyState === "complete") {
    startClock();
  } else {
    document.addEventListener("DOMContentLoaded", startClock);
  }
})();
