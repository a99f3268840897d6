// Pages where people judge items (labeling, comparing): time on task, Ctrl+Enter submit, Alt+S skip, and
// number keys for the focused rubric criterion. Everything else (autosave, submit, next item) is htmx.
(function () {
  "use strict";

  var visibleSince = null;
  var base = 0;
  var shownItem = null;  // the item on screen: a swap that brings another one starts afresh
  var readyAt = 0;
  var dirty = false;  // typed or chosen since the last save reached the server
  var touched = false;  // typed or chosen anything on this item

  function form() { return document.querySelector("form[data-timed]"); }
  var typing = window.enclave.typing;

  function startClock(swapped) {
    var f = form();
    var field = document.getElementById("time-spent");
    base = field ? parseInt(field.value || "0", 10) : 0;
    visibleSince = document.visibilityState === "visible" ? Date.now() : null;
    readyAt = swapped === true ? Date.now() : 0;  // only an item that replaced another one is guarded
    dirty = false;
    touched = false;
    var fresh = !!f && f.dataset.item !== shownItem;
    shownItem = f ? f.dataset.item : null;
    var answer = document.getElementById("id_response");
    if (f && answer && !f.dataset.focused) {
      f.dataset.focused = "1";
      answer.focus({ preventScroll: true });  // on a phone the conversation above it is read first
    } else if (fresh && typing() && f.contains(document.activeElement)) {
      // htmx gives the focus back to the field with the same id: on a new item the keys choose, not type.
      document.activeElement.blur();
    }
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

  // Work typed in the last moment before the page goes away (reload, closed tab, another page) is sent
  // as a last autosave: the usual one waits for a pause in typing.
  function edited(event) {
    if (form() && form().contains(event.target)) { dirty = true; touched = true; }
  }
  document.addEventListener("input", edited);
  document.addEventListener("change", edited);
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (form() && form().contains(event.detail.elt)) dirty = false;  // this request carries all of it
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful && form() && form().contains(event.detail.elt)) dirty = true;
  });
  function flush() {
    var f = form();
    if (!dirty || !f || !f.dataset.draftUrl) return;
    var data = new FormData(f);
    data.set("time_spent_ms", String(elapsed()));
    var token = window.enclave.csrfToken();
    if (token) data.set("csrfmiddlewaretoken", token);
    dirty = false;
    fetch(f.dataset.draftUrl, { method: "POST", body: data, keepalive: true, credentials: "same-origin" });
  }
  window.addEventListener("pagehide", flush);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });

  // After the settle, when htmx has wired up the new item's autosave triggers.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "workspace") {
      startClock(true);
      window.scrollTo(0, 0);
    }
  });

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      // A second press just after the next item arrived was meant for the one before, not for this one.
      if (touched || Date.now() - readyAt > 1000) f.requestSubmit();
      return;
    }
    // Alt+S skips; AltGr+S (Ctrl+Alt on Windows) and Option+S on a Mac type a letter instead.
    var altGr = event.ctrlKey || event.metaKey || (event.getModifierState && event.getModifierState("AltGraph"));
    var plainS = event.key === "s" || event.key === "S" || (event.code === "KeyS" && !typing());
    if (event.altKey && !altGr && plainS) {
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
