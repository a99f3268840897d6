// The comparison page, on top of workspace.js: choice keys, strength, per-criterion arrows, ranking by
// keys or drag, and restoring a saved draft. Choices are letters in display order; the server maps them.
(function () {
  "use strict";

  function form() { return document.getElementById("compare-form"); }
  var typing = window.enclave.typing;
  var CHOICE = { "1": "A", "2": "B", "3": "tie", "0": "both_bad" };

  // quiet: set it as it was saved, without a change event (that would autosave what was just restored).
  function check(name, value, quiet) {
    var f = form();
    var input = f && f.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (!input) return false;
    input.checked = true;
    if (!quiet) input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  // Strength says how much better A or B is: for a tie or "both bad" it means nothing, so it is switched
  // off (a disabled fieldset's value is not sent). A or B without a strength is stored as "slightly", so
  // the page shows that choice rather than leaving it unmarked.
  function syncStrength() {
    var f = form(), box = document.getElementById("strength");
    if (!f || !box) return;
    var chosen = f.querySelector('input[name="choice"]:checked');
    box.disabled = !!chosen && (chosen.value === "tie" || chosen.value === "both_bad");
    if (chosen && !box.disabled && !f.querySelector('input[name="strength"]:checked')) check("strength", "1", true);
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "choice") syncStrength();
  });

  function rows() { return Array.prototype.slice.call(form().querySelectorAll(".criterion-choice")); }
  function currentRow() {
    var list = rows();
    var marked = list.filter(function (r) { return r.classList.contains("current"); })[0];
    return marked || list[0];
  }
  function moveRow(step) {
    var list = rows(), current = currentRow(), index = list.indexOf(current) + step;
    if (index < 0 || index >= list.length) return;
    current.classList.remove("current");
    list[index].classList.add("current");
    list[index].scrollIntoView({ block: "nearest" });
  }

  function cards() { return Array.prototype.slice.call(form().querySelectorAll(".candidate")); }
  function ranksFromOrder() {
    cards().forEach(function (card, i) {
      var select = card.querySelector("select");
      if (select) { select.value = String(i + 1); }
    });
    var first = form().querySelector(".candidate select");
    if (first) first.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function restoreDraft() {
    var f = form();
    if (!f) return;
    var shown = JSON.parse(f.dataset.draft || "null") || {};
    if (shown.choice) check("choice", shown.choice, true);
    if (shown.strength) check("strength", String(shown.strength), true);
    syncStrength();
    Object.keys(shown.criteria || {}).forEach(function (k) { check("crit_" + k, shown.criteria[k], true); });
    if (shown.overall) check("overall", shown.overall, true);
    (shown.ranking || []).forEach(function (tier, i) {
      tier.forEach(function (letter) {
        var select = f.querySelector('select[name="rank_' + letter + '"]');
        if (select) select.value = String(i + 1);
      });
    });
    var firstRow = f.querySelector(".criterion-choice");
    if (firstRow) firstRow.classList.add("current");
    // Ranking starts on the first card, so number keys work at once.
    if (f.dataset.mode === "ranking") {
      var firstCard = f.querySelector(".candidate");
      if (firstCard && (!document.activeElement || document.activeElement === document.body)) firstCard.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f || typing() || event.ctrlKey || event.altKey || event.metaKey) return;
    var mode = f.dataset.mode;
    var digit = event.code && event.code.indexOf("Digit") === 0 ? event.code.slice(5) : null;
    if (mode === "pairwise" && digit) {
      var strengthOff = document.getElementById("strength") && document.getElementById("strength").disabled;
      if (event.shiftKey && !strengthOff && check("strength", digit)) { event.preventDefault(); return; }
      if (!event.shiftKey && CHOICE[digit] && check("choice", CHOICE[digit])) event.preventDefault();
      return;
    }
    if (mode === "per_criterion") {
      if (event.key === "ArrowDown" || event.key === "ArrowRight") { event.preventDefault(); moveRow(1); return; }
      if (event.key === "ArrowUp" || event.key === "ArrowLeft") { event.preventDefault(); moveRow(-1); return; }
      if (digit && CHOICE[digit]) {
        var row = currentRow(), key = row.dataset.key;
        if (check(key === "overall" ? "overall" : "crit_" + key, CHOICE[digit])) { event.preventDefault(); moveRow(1); }
      }
      return;
    }
    if (mode === "ranking") {
      var list = cards(), index = list.indexOf(document.activeElement.closest && document.activeElement.closest(".candidate"));
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        event.preventDefault();
        var next = list[Math.max(0, Math.min(list.length - 1, (index < 0 ? 0 : index + (event.key === "ArrowRight" ? 1 : -1))))];
        if (next) next.focus();
        return;
      }
      if (digit && index >= 0) {
        var select = list[index].querySelector("select");
        if (select && select.querySelector('option[value="' + digit + '"]')) {
          event.preventDefault();
          select.value = digit;
          select.dispatchEvent(new Event("change", { bubbles: true }));
          if (list[index + 1]) list[index + 1].focus();
        }
      }
    }
  });

  // Drag a card before another to reorder; the order becomes ranks 1..n (use the keys for ties).
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".candidate");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.letter);
  });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest && event.target.closest(".candidate")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    var target = event.target.closest && event.target.closest(".candidate");
    if (!dragged || !target || target === dragged) return;
    event.preventDefault();
    target.parentNode.insertBefore(dragged, target);
    dragged = null;
    ranksFromOrder();
  });

  // The chosen card (pairwise, or overall) is outlined, so the choice is visible next to the text.
  function markChosen() {
    var f = form();
    if (!f) return;
    var picked = f.querySelector('input[name="choice"]:checked, input[name="overall"]:checked');
    cards().forEach(function (card) {
      card.classList.toggle("chosen", !!picked && picked.value === card.dataset.letter);
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target && (event.target.name === "choice" || event.target.name === "overall")) markChosen();
  });

  // The address names the comparison on screen, so a reload or a reopened tab shows it again (with its
  // draft) instead of drawing another one.
  function keepAddress() {
    var f = form(), url = f && f.dataset.itemUrl;
    if (url && window.location.pathname !== url) window.history.replaceState(window.history.state, "", url);
  }

  document.addEventListener("workspace:ready", function () { restoreDraft(); markChosen(); keepAddress(); });
})();
