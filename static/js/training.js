// Live GAN training pages. A (re)connecting socket first gets a full snapshot (history included); then each
// "update" carries the run's whole state plus only the metric rows after the step the page holds
// (metrics_after). A page whose last step differs from metrics_after has missed rows: it asks for a resync.
(function () {
  "use strict";

  function connect(path, onMessage, onState) {
    var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
    var delay = 500;
    function open() {
      var ws = new WebSocket(proto + window.location.host + path);
      ws.onopen = function () { delay = 500; onState("live"); };
      ws.onmessage = function (ev) { onMessage(JSON.parse(ev.data), ws); };
      ws.onclose = function (ev) {
        if (ev.code === 4403 || ev.code === 4401 || ev.code === 4404) { onState("not allowed"); return; }
        onState("reconnecting…");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  function field(root, name) { return root.querySelector('[data-field="' + name + '"]'); }

  function setText(root, name, text) {
    var el = field(root, name);
    if (el) { el.textContent = text; }
    return el;
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds <= 0) { return "—"; }
    var s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + (s % 60) + " s"; }
    return s + " s";
  }

  function pairs(xs, ys) {
    var out = [];
    for (var i = 0; i < xs.length; i++) { if (ys[i] !== null) { out.push([xs[i], ys[i]]); } }
    return out;
  }

  function lineChart(el) {
    if (!el || !window.echarts) { return null; }
    var chart = window.echarts.init(el);
    chart.setOption({
      animation: false,
      grid: { left: 50, right: 16, top: 36, bottom: 36 },
      legend: { top: 0 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 24, min: 0 },
      yAxis: { type: "value", scale: true },
      series: []
    });
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  var MAX_POINTS = 1200;  // rows kept for the charts; beyond it every other old row is dropped

  // Append an update's rows to the held history; false when rows are missing in between (a gap).
  function appendMetrics(held, run) {
    var last = held.step.length ? held.step[held.step.length - 1] : -1;
    if (run.metrics_after !== last) { return false; }
    Object.keys(held).forEach(function (name) { held[name] = held[name].concat(run.metrics[name] || []); });
    if (held.step.length > MAX_POINTS) {
      var n = held.step.length;
      Object.keys(held).forEach(function (name) {
        held[name] = held[name].filter(function (_, i) { return i % 2 === 0 || i === n - 1; });
      });
    }
    return true;
  }

  var LOSSES = [["loss_g", "G"], ["loss_d", "D"], ["gp", "gradient penalty"], ["loss_enc", "encoder"]];

  function drawCharts(charts, root, run) {
    var m = run.metrics;
    if (charts.losses) {
      charts.losses.setOption({
        series: LOSSES.map(function (s) {
          return { name: s[1], type: "line", showSymbol: false, data: pairs(m.step, m[s[0]]) };
        })
      });
    }
    var lossEl = root.querySelector('[data-chart="losses"]');
    if (lossEl) { lossEl.setAttribute("data-points", String(m.step.length)); }
    if (charts.fd) {
      charts.fd.setOption({
        series: [{ name: "FD-Lite", type: "line", data: pairs(run.fd.step, run.fd.fd_lite) }]
      });
    }
    var fdEl = root.querySelector('[data-chart="fd"]');
    if (fdEl) { fdEl.setAttribute("data-points", String(run.fd.step.length)); }
  }

  function drawSample(root, run) {
    var img = field(root, "sample");
    var latest = run.latest_sample;
    if (!img) { return; }
    if (!latest) {
      img.hidden = true;
      setText(root, "sample_caption", "No samples yet.");
      return;
    }
    if (img.getAttribute("data-step") !== String(latest.step)) {
      img.src = latest.url;
      img.setAttribute("data-step", String(latest.step));
    }
    img.hidden = false;
    setText(root, "sample_caption", "Step " + latest.step + " at " + latest.resolution + " px" +
      (latest.alpha < 1 ? " (fade-in α " + fixed(latest.alpha, 2) + ")" : ""));
  }

  function drawRun(root, charts, run) {
    var status = setText(root, "status", run.status);
    if (status) { status.className = "status status-" + run.status; }
    setText(root, "message", run.job ? run.job.message : "");
    setText(root, "error", run.job ? run.job.error : "");
    setText(root, "step", run.step + "/" + run.total_steps);
    setText(root, "resolution", run.resolution ? run.resolution + "px" : "—");
    setText(root, "alpha", fixed(run.alpha, 2) + (run.phase === "fade" ? " (fading in)" : ""));
    setText(root, "images_per_s", fixed(run.images_per_s, 1));
    setText(root, "eta", run.is_active ? duration(run.eta_s) : "—");
    setText(root, "fd_lite", fixed(run.fd_lite, 2));
    setText(root, "checkpoint", run.checkpoint_path ? "step " + run.checkpoint_step : "none yet");
    setText(root, "device", run.device || "—");
    var bar = field(root, "bar");
    if (bar) { bar.style.width = run.percent + "%"; }
    root.querySelectorAll("[data-show-if]").forEach(function (el) {
      el.hidden = !run[el.getAttribute("data-show-if")];
    });
    root.setAttribute("data-status", run.status);
    root.setAttribute("data-step", String(run.step));
    drawCharts(charts, root, run);
    drawSample(root, run);
  }

  document.querySelectorAll("[data-run-page]").forEach(function (root) {
    var charts = {
      losses: lineChart(root.querySelector('[data-chart="losses"]')),
      fd: lineChart(root.querySelector('[data-chart="fd"]'))
    };
    var held = null;
    var initial = document.getElementById("run-snapshot");
    if (initial) {
      var first = JSON.parse(initial.textContent);
      held = first.metrics;
      drawRun(root, charts, first);
    }
    connect(root.getAttribute("data-ws-path"), function (msg, ws) {
      if (msg.type === "snapshot") {
        held = msg.run.metrics;
      } else if (msg.type !== "update") {
        return;
      } else if (!held || !appendMetrics(held, msg.run)) {
        ws.send(JSON.stringify({ type: "resync" }));  // the state below is still whole: draw it meanwhile
      }
      msg.run.metrics = held || msg.run.metrics;
      drawRun(root, charts, msg.run);
    }, function (state) { setText(root, "live", state === "live" ? "● live" : state); });
  });

  document.querySelectorAll("[data-runs-live]").forEach(function (table) {
    connect(table.getAttribute("data-ws-path"), function (msg) {
      if (msg.type !== "row") { return; }
      var row = table.querySelector('[data-run-row="' + msg.run.id + '"]');
      if (!row) { return; }
      var status = setText(row, "status", msg.run.status);
      if (status) { status.className = "status status-" + msg.run.status; }
      setText(row, "step", msg.run.step + "/" + msg.run.total_steps);
      setText(row, "resolution", msg.run.resolution ? msg.run.resolution + "px" : "—");
      setText(row, "fd_lite", fixed(msg.run.fd_lite, 2));
    }, function () {});
  });
})();
