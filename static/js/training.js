// Training pages: the job form fills its config from the chosen preset (and again when the chosen release
// trains the other kind of job), and a job's page draws its loss, reward and learning-rate charts (vendored
// uPlot) from the metrics endpoint, appending new steps while the job runs. No inline script: the CSP allows
// only our own files.
(function () {
  "use strict";

  // --- The job form ---------------------------------------------------------------------------------------
  function setupForm(form) {
    var tableNode = document.getElementById("preset-table");
    if (!tableNode) return;
    var table = JSON.parse(tableNode.textContent);
    var kind = form.querySelector("[name=kind]");
    var preset = form.querySelector("[name=preset]");

    function showPreset() {
      form.querySelectorAll("[data-preset]").forEach(function (el) {
        el.hidden = el.getAttribute("data-preset") !== preset.value;
      });
    }

    function fill() {
      var values = table[preset.value] && table[preset.value][kind.value];
      if (!values) return;
      Object.keys(values).forEach(function (name) {
        var input = form.querySelector("[name=" + name + "]");
        if (!input) return;
        if (input.type === "checkbox") input.checked = Boolean(values[name]);
        else input.value = values[name];
      });
      showPreset();
    }

    preset.addEventListener("change", fill);
    kind.addEventListener("change", fill);  // forms.js sets the kind the chosen release trains
    showPreset();
  }

  // --- Charts ---------------------------------------------------------------------------------------------
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

  // Tick labels that differ from one another: a learning rate of 2e-5 decaying to 0 would otherwise read
  // "0, 0, 0". Scientific notation with as many digits as it takes to tell the ticks apart.
  function scientificTicks(u, splits) {
    for (var digits = 0; digits < 6; digits++) {
      var labels = splits.map(function (v) { return v === 0 ? "0" : v.toExponential(digits); });
      if (new Set(labels).size === labels.length) return labels;
    }
    return splits.map(function (v) { return String(v); });
  }

  function boxWidth(box) { return Math.max(160, Math.floor(box.clientWidth || 480)); }

  function Chart(box, series, options) {
    options = options || {};
    this.box = box;
    this.names = series.map(function (s) { return s.key; });
    this.rows = {};  // step -> {key: value}
    var height = options.height || 220;
    var y = { };
    if (options.scientific) { y.values = scientificTicks; y.size = 64; }
    var opts = {
      width: boxWidth(box),
      height: height,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, y],
      // The legend names the series; values appear on the chart itself under the cursor (uPlot's live
      // legend would print "--" for every series whenever the cursor is elsewhere).
      legend: { live: false },
      series: [{ label: "step" }].concat(series.map(function (s, i) {
        return {
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
          points: { show: s.points || false, size: 6 },
          scale: s.scale || "y",
        };
      })),
    };
    if (series.some(function (s) { return s.scale === "y2"; })) {
      opts.axes.push({ scale: "y2", side: 1, grid: { show: false } });
      opts.scales.y2 = { auto: true };
    }
    this.plot = new window.uPlot(opts, this.data(), box);
    // The chart follows its box (the grid reflows from three columns to one on a narrow window).
    var self = this;
    var width = opts.width;
    var resize = function () {
      var now = boxWidth(box);
      if (now !== width) { width = now; self.plot.setSize({ width: now, height: height }); }
    };
    if (window.ResizeObserver) new window.ResizeObserver(resize).observe(box);
    else window.addEventListener("resize", resize);
  }

  Chart.prototype.add = function (step, key, value) {
    if (this.names.indexOf(key) < 0 || typeof value !== "number") return false;
    (this.rows[step] = this.rows[step] || {})[key] = value;
    return true;
  };

  Chart.prototype.data = function () {
    var rows = this.rows;
    var steps = Object.keys(rows).map(Number).sort(function (a, b) { return a - b; });
    return [steps].concat(this.names.map(function (key) {
      return steps.map(function (step) { return key in rows[step] ? rows[step][key] : null; });
    }));
  };

  Chart.prototype.redraw = function () { this.plot.setData(this.data()); };

  function setupCharts(root) {
    if (!window.uPlot) return;
    var url = root.getAttribute("data-metrics-url");
    var kind = root.getAttribute("data-kind");
    var charts = [];
    var loss = document.getElementById("chart-loss");
    if (loss) {
      charts.push(new Chart(loss, [
        { key: "loss", label: "train loss" },
        { key: "eval_loss", label: "eval loss", points: true },
      ]));
    }
    var rewards = document.getElementById("chart-rewards");
    if (rewards && (kind === "dpo" || kind === "kto")) {
      charts.push(new Chart(rewards, [
        { key: "rewards/chosen", label: "chosen" },
        { key: "rewards/rejected", label: "rejected" },
        { key: "rewards/margins", label: "margin" },
        { key: "rewards/accuracies", label: "accuracy", scale: "y2" },
        { key: "eval_rewards/accuracies", label: "eval accuracy", scale: "y2", points: true },
      ]));
    }
    var pairs = document.getElementById("chart-pairs");
    if (pairs && kind === "reward") {
      charts.push(new Chart(pairs, [
        { key: "margin", label: "margin" },
        { key: "eval_margin", label: "eval margin", points: true },
        { key: "accuracy", label: "pair accuracy", scale: "y2" },
        { key: "eval_accuracy", label: "eval pair accuracy", scale: "y2", points: true },
      ]));
    }
    var lr = document.getElementById("chart-lr");
    if (lr) {
      charts.push(new Chart(lr, [
        { key: "learning_rate", label: "learning rate" },
        { key: "grad_norm", label: "grad norm", scale: "y2" },
      ], { scientific: true }));
    }
    var last = 0;
    var active = root.getAttribute("data-active") === "1";

    function poll() {
      fetch(url + "?after=" + last, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body) return;
          var changed = false;
          body.metrics.forEach(function (m) {
            Object.keys(m.values).forEach(function (key) {
              charts.forEach(function (chart) { changed = chart.add(m.step, key, m.values[key]) || changed; });
            });
          });
          last = body.last;
          if (changed) charts.forEach(function (chart) { chart.redraw(); });
          active = body.state === "queued" || body.state === "running";
          followState(body.state);
          root.setAttribute("data-points", String(last));
          root.setAttribute("data-active", active ? "1" : "0");
        })
        .finally(function () { if (active) setTimeout(poll, 1500); });
    }
    poll();
  }

  // The "queued" message shown after starting a job speaks of the job as it was: once the job has left the
  // queue, it goes (the status above the charts says what the job does now).
  function followState(state) {
    if (!state || state === "queued") return;
    document.querySelectorAll(".message.job-queued").forEach(function (message) {
      var list = message.parentNode;
      message.remove();
      if (list && !list.children.length) list.remove();
    });
  }

  // The log pane shows its newest lines: keep it scrolled to the bottom as the fragment refreshes.
  function scrollLog() {
    var log = document.getElementById("job-log");
    if (log) log.scrollTop = log.scrollHeight;
    var state = document.getElementById("job-state");
    if (state) followState(state.getAttribute("data-state"));
  }
  document.addEventListener("htmx:afterSettle", scrollLog);

  document.addEventListener("DOMContentLoaded", function () {
    scrollLog();
    var form = document.getElementById("job-form");
    if (form) setupForm(form);
    var charts = document.getElementById("charts");
    if (charts) setupCharts(charts);
  });
})();
