// The charts of a comparison project's overview and quality page, drawn with the vendored uPlot from the
// page's json_script block "chart-data" (the page carries its data: no request of its own). Each chart's
// figure caption holds the same figures in words. No inline script: the CSP allows only our own files.
(function () {
  "use strict";

  var PALETTE = ["#2457a6", "#c2410c", "#15803d", "#7c3aed", "#0e7490", "#be185d", "#a16207", "#4b5563"];
  var OK = "#1f7a4d", WARN = "#c2410c", DANGER = "#b42318", INK = "#1d2430", MUTED = "#5d6776", GRID = "#e5e8ee";
  var HEIGHT = 240;

  function px(n) { return n * (window.devicePixelRatio || 1); }
  function pct(v) { return v == null ? "—" : Math.round(v * 100) + " %"; }
  function short(name) { return name.length > 14 ? name.slice(0, 13) + "…" : name; }
  function nothing() { return null; }

  function axis(label, extra) {
    var base = {
      label: label,
      stroke: MUTED,
      labelSize: 22,
      font: "12px system-ui, sans-serif",
      labelFont: "600 12px system-ui, sans-serif",
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
    };
    Object.keys(extra || {}).forEach(function (key) { base[key] = extra[key]; });
    return base;
  }

  // An x axis of categories 0..n-1 (days, annotators, counts): one label per category that has room.
  function categoryAxis(label, names) {
    return axis(label, {
      splits: function (u) {
        var room = Math.max(1, Math.floor(u.bbox.width / px(64)));
        var step = Math.max(1, Math.ceil(names.length / room));
        var splits = [];
        for (var i = 0; i < names.length; i += step) splits.push(i);
        return splits;
      },
      values: function (u, splits) { return splits.map(function (i) { return names[i] == null ? "" : short(String(names[i])); }); },
    });
  }

  function categoryScale(n) {
    return { time: false, range: function () { return [-0.5, n - 0.5]; } };
  }

  function countAxis(label) {
    return axis(label, {
      incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000],
      values: function (u, splits) { return splits.map(function (v) { return String(v); }); },
    });
  }

  function percentAxis(label) {
    return axis(label, {
      incrs: [0.1, 0.2, 0.25, 0.5],
      values: function (u, splits) { return splits.map(function (v) { return Math.round(v * 100) + " %"; }); },
    });
  }

  // A dashed reference line (a threshold) across the plot, and its entry in the legend.
  function referenceSeries(label, color, text) {
    return { label: label, stroke: color, width: 1.5, dash: [6, 4], paths: nothing, points: { show: false },
      value: function () { return text; } };
  }

  function referenceLines(lines) {
    return { hooks: { draw: [function (u) {
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      ctx.lineWidth = px(1.5);
      ctx.setLineDash([px(6), px(4)]);
      lines.forEach(function (line) {
        if (line.value == null) return;
        ctx.strokeStyle = line.color;
        ctx.beginPath();
        if (line.axis === "x") {
          var x = Math.round(u.valToPos(line.value, "x", true));
          ctx.moveTo(x, box.top);
          ctx.lineTo(x, box.top + box.height);
        } else {
          var y = Math.round(u.valToPos(line.value, "y", true));
          ctx.moveTo(box.left, y);
          ctx.lineTo(box.left + box.width, y);
        }
        ctx.stroke();
      });
      ctx.restore();
    }] } };
  }

  function nulls(n) { var out = []; for (var i = 0; i < n; i++) out.push(null); return out; }
  function bars() { return window.uPlot.paths.bars({ size: [0.6, 56], align: 0 }); }

  // --- Overview -------------------------------------------------------------------------------------------

  // Stacked bars: each annotator's bar runs from the running total before them to the one after them (a band
  // to the series below it gives a bar its foot).
  function perDay(d) {
    var n = d.days.length, xs = d.days.map(function (_, i) { return i; });
    var running = xs.map(function () { return 0; });
    var series = [{ label: "Day", value: function (u, v) { return v == null ? "—" : d.day_labels[v]; } }];
    var data = [xs], bands = [];
    d.series.forEach(function (s, j) {
      var color = PALETTE[j % PALETTE.length];
      running = running.map(function (v, i) { return v + s.counts[i]; });
      data.push(running.slice());
      series.push({ label: s.label, fill: color, stroke: color, width: 0, paths: bars(), points: { show: false },
        value: function (u, v, si, idx) { return idx == null ? "—" : String(s.counts[idx]); } });
      if (j > 0) bands.push({ series: [j + 1, j], fill: null });
    });
    var top = Math.max.apply(null, d.totals.concat([1]));
    return {
      opts: {
        scales: { x: categoryScale(n), y: { range: function () { return [0, Math.ceil(top * 1.15) || 1]; } } },
        axes: [categoryAxis("Day", d.day_labels), countAxis("Judgements")],
        series: series,
        bands: bands,
        cursor: { points: { show: false } },
      },
      data: data,
    };
  }

  function progress(d) {
    var xs = d.buckets.map(function (_, i) { return i; });
    var open = d.buckets.map(function (c, i) { return i < d.k ? c : null; });
    var done = d.buckets.map(function (c, i) { return i === d.k ? c : null; });
    var top = Math.max.apply(null, d.buckets.concat([1]));
    return {
      opts: {
        scales: { x: categoryScale(xs.length), y: { range: function () { return [0, Math.ceil(top * 1.15)]; } } },
        axes: [categoryAxis("Judgements received (k = " + d.k + ")", xs), countAxis("Comparisons")],
        series: [
          { label: "Received", value: function (u, v) { return v == null ? "—" : v + " of " + d.k; } },
          { label: "Still wanted", fill: PALETTE[0], stroke: PALETTE[0], width: 0, paths: bars(), points: { show: false } },
          { label: "All " + d.k + " in", fill: OK, stroke: OK, width: 0, paths: bars(), points: { show: false } },
        ],
        cursor: { points: { show: false } },
      },
      data: [xs, open, done],
    };
  }

  // --- Quality page ---------------------------------------------------------------------------------------

  var DAY = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  var HOUR = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });

  // "5 Dec" a day apart or more; closer, the hour, with the day where it changes.
  function timeLabels(u, splits, axisIdx, space, incr) {
    var last = null;
    return splits.map(function (t) {
      var at = new Date(t * 1000), day = DAY.format(at);
      if (incr >= 86400) return day;
      var label = day !== last ? HOUR.format(at) + "\n" + day : HOUR.format(at);
      last = day;
      return label;
    });
  }

  function agreement(d) {
    var values = [d.threshold];
    d.series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) values.push(v); }); });
    var low = Math.min(0, Math.floor(Math.min.apply(null, values) * 10) / 10);
    var series = [{ label: "Computed", value: function (u, t) {
      return t == null ? "—" : DAY.format(new Date(t * 1000)) + " " + HOUR.format(new Date(t * 1000));
    } }].concat(d.series.map(function (s, i) {
      var color = PALETTE[i % PALETTE.length];
      // The first line drawn widest, so one that runs under a later one still shows.
      return { label: s.label, stroke: color, width: Math.max(2, 5 - 1.5 * i), spanGaps: true, points: { show: true, size: 6, fill: color },
        value: function (u, v) { return v == null ? "—" : v.toFixed(2); } };
    }));
    series.push(referenceSeries("Threshold", DANGER, String(d.threshold)));
    return {
      opts: {
        scales: {
          x: { time: true, range: function (u, min, max) {
            var pad = (max - min) * 0.06 || 3600;  // room for the first and last labels
            return [min - pad, max + pad];
          } },
          y: { range: function () { return [low, 1]; } },
        },
        axes: [axis("Computed at", { values: timeLabels }), axis("Krippendorff's α", { values: function (u, s) {
          return s.map(function (v) { return v.toFixed(1); });
        } })],
        series: series,
        plugins: [referenceLines([{ axis: "y", value: d.threshold, color: DANGER }])],
      },
      data: [d.times].concat(d.series.map(function (s) { return s.values; })).concat([nulls(d.times.length)]),
    };
  }

  // Whiskers of each annotator's interval, drawn under the point of their share.
  function intervals(points) {
    return { hooks: { drawSeries: [function (u, si) {
      if (si !== 1) return;
      var ctx = u.ctx, cap = px(5);
      ctx.save();
      ctx.strokeStyle = INK;
      ctx.lineWidth = px(1.5);
      points.forEach(function (p, i) {
        var x = Math.round(u.valToPos(i, "x", true));
        var y0 = u.valToPos(p.low, "y", true), y1 = u.valToPos(p.high, "y", true);
        ctx.beginPath();
        ctx.moveTo(x, y0); ctx.lineTo(x, y1);
        ctx.moveTo(x - cap, y0); ctx.lineTo(x + cap, y0);
        ctx.moveTo(x - cap, y1); ctx.lineTo(x + cap, y1);
        ctx.stroke();
      });
      ctx.restore();
    }] } };
  }

  function bias(d) {
    var points = d.points, xs = points.map(function (_, i) { return i; });
    var names = points.map(function (p) { return p.label; });
    return {
      opts: {
        scales: { x: categoryScale(points.length), y: { range: function () { return [0, 1]; } } },
        axes: [categoryAxis("Annotator", names), percentAxis("First shown wins")],
        series: [
          { label: "Annotator", value: function (u, v) { return v == null ? "—" : names[v]; } },
          { label: "Share", stroke: PALETTE[0], fill: PALETTE[0], paths: nothing,
            points: { show: true, size: 10, width: 0, fill: PALETTE[0] },
            value: function (u, v, si, idx) {
              return idx == null ? "—" : pct(v) + " of " + points[idx].decisive;
            } },
          { label: "95 % interval (Wilson)", stroke: INK, width: 1.5, paths: nothing, points: { show: false },
            value: function (u, v, si, idx) {
              return idx == null ? "—" : pct(points[idx].low) + "–" + pct(points[idx].high);
            } },
          referenceSeries("No preference", DANGER, "50 %"),
        ],
        plugins: [intervals(points), referenceLines([{ axis: "y", value: 0.5, color: DANGER }])],
      },
      data: [xs, points.map(function (p) { return p.share; }), nulls(xs.length), nulls(xs.length)],
    };
  }

  // Names beside the points of the scatter.
  function pointNames(points) {
    return { hooks: { draw: [function (u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = INK;
      ctx.font = px(11) + "px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      points.forEach(function (p) {
        var x = u.valToPos(p.median_s, "x", true), y = u.valToPos(p.accuracy, "y", true);
        var right = x < u.bbox.left + u.bbox.width * 0.7;
        ctx.textAlign = right ? "left" : "right";
        ctx.fillText(short(p.label), x + (right ? px(10) : -px(10)), y);
      });
      ctx.restore();
    }] } };
  }

  function scatter(d) {
    var points = d.points;
    var xs = points.map(function (p) { return p.median_s; });
    var within = points.map(function (p) { return p.flagged || p.too_fast ? null : p.accuracy; });
    var flagged = points.map(function (p) { return p.flagged ? p.accuracy : null; });
    var fast = points.map(function (p) { return p.too_fast ? p.accuracy : null; });
    var right = Math.max.apply(null, xs.concat([d.fast_s || 0, 1])) * 1.2;
    function dot(label, color, size, hollow) {
      return { label: label, stroke: color, fill: hollow ? "transparent" : color, paths: nothing,
        points: { show: true, size: size, width: hollow ? 2.5 : 0, stroke: color, fill: hollow ? "transparent" : color },
        value: function (u, v, si, idx) { return idx == null || v == null ? "—" : points[idx].label + ", " + pct(v); } };
    }
    var series = [
      { label: "Median time", value: function (u, v) { return v == null ? "—" : v + " s"; } },
      dot("Not flagged", OK, 10, false),
      dot("Low gold accuracy (flagged)", DANGER, 10, false),
      dot("Too fast", WARN, 18, true),
      referenceSeries("Accuracy threshold", DANGER, pct(d.accuracy_threshold) + " after " + d.gold_minimum + " gold"),
    ];
    var lines = [{ axis: "y", value: d.accuracy_threshold, color: DANGER }];
    var data = [xs, within, flagged, fast, nulls(xs.length)];
    if (d.fast_s != null) {
      series.push(referenceSeries("Too-fast time", WARN, d.fast_s + " s"));
      lines.push({ axis: "x", value: d.fast_s, color: WARN });
      data.push(nulls(xs.length));
    }
    return {
      opts: {
        scales: { x: { time: false, range: function () { return [0, right]; } },
          y: { range: function () { return [0, 1.05]; } } },
        axes: [axis("Median time per comparison (s)"), percentAxis("Gold accuracy")],
        series: series,
        plugins: [referenceLines(lines), pointNames(points)],
      },
      data: data,
    };
  }

  var BUILDERS = { per_day: perDay, progress: progress, agreement: agreement, bias: bias, scatter: scatter };

  function draw(box, chart) {
    var built = BUILDERS[box.getAttribute("data-chart")](chart);
    var opts = built.opts;
    opts.series.forEach(function (s) {
      if (!s.value) s.value = function (u, v) { return v == null ? "—" : String(v); };
    });
    opts.width = Math.max(240, box.clientWidth);
    opts.height = HEIGHT;
    opts.legend = { live: true };
    var plot = new window.uPlot(opts, built.data, box);
    var width = opts.width;
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var now = Math.max(240, box.clientWidth);
        if (now !== width) { width = now; plot.setSize({ width: now, height: HEIGHT }); }
      }).observe(box);
    }
    box.setAttribute("data-drawn", "");
  }

  function setup() {
    var source = document.getElementById("chart-data");
    if (!source || !window.uPlot) return;
    var charts = JSON.parse(source.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var chart = charts[box.getAttribute("data-chart")];
      if (chart && !chart.empty) draw(box, chart);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
