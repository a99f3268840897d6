// Forms whose options depend on one choice (a release's kind, the release a job trains on, an import's
// format): the form names that control (a select or radio buttons) in data-switch-on; fields marked
// data-when="value …" show only for those values, and the hidden ones are disabled so they are not sent. A
// select's option may stand for a value of its own (data-switch: a release option carries the kind of job it
// trains); data-switch-into names a hidden input that carries the value to the server and to other scripts
// (a "change" event). data-switch-refine="name:value" lets radio buttons refine one value: when the control
// says "value", the checked radio of "name" says which (a preference release trains a DPO adapter or a
// reward model).
(function () {
  "use strict";

  function valueOf(form, control, fallback) {
    if (control.type === "radio") {
      var checked = form.querySelector("[name='" + control.name + "']:checked");
      return (checked && checked.value) || fallback;
    }
    if (control.tagName === "SELECT") {
      var option = control.options[control.selectedIndex];
      if (!option) return fallback;
      return option.getAttribute("data-switch") || option.value || fallback;
    }
    return control.value || fallback;
  }

  function setup(form) {
    var control = form.querySelector("[name='" + form.getAttribute("data-switch-on") + "']");
    if (!control) return;
    var fallback = form.getAttribute("data-switch-default") || "";
    var into = form.getAttribute("data-switch-into");
    var refine = (form.getAttribute("data-switch-refine") || "").split(":");

    function current() {
      var value = valueOf(form, control, fallback);
      if (refine.length === 2 && value === refine[1]) {
        var picked = form.querySelector("[name='" + refine[0] + "']:checked");
        if (picked) value = picked.value;
      }
      return value;
    }

    function apply() {
      var value = current();
      form.setAttribute("data-switch-value", value);
      form.querySelectorAll("[data-when]").forEach(function (el) {
        var show = el.getAttribute("data-when").split(" ").indexOf(value) >= 0;
        el.hidden = !show;
        el.querySelectorAll("input, select, textarea").forEach(function (input) { input.disabled = !show; });
      });
      form.querySelectorAll("fieldset.form-section").forEach(function (set) {
        var fields = set.querySelectorAll(".form-field");
        set.hidden = fields.length > 0 && Array.prototype.every.call(fields, function (f) { return f.hidden; });
      });
      var target = into && form.querySelector("[name='" + into + "']");
      if (target && target.value !== value) {
        target.value = value;
        target.dispatchEvent(new Event("change"));
      }
    }

    form.addEventListener("change", function (event) {
      if (event.target.name === control.name || event.target.name === refine[0]) apply();
    });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-switch-on]").forEach(setup);
  });
})();
