// Live job progress over a websocket. Every message is a full snapshot, so a page that
// reconnects (server restart, network blip) simply redraws from the next message.
(function () {
  "use strict";

  function connect(path, onSnapshot, onState) {
    var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
    var delay = 500;
    function open() {
      var ws = new WebSocket(proto + window.location.host + path);
      ws.onopen = function () { delay = 500; onState("live"); };
      ws.onmessage = function (ev) {
        var msg = JSON.parse(ev.data);
        if (msg.type === "snapshot") { onSnapshot(msg.job); }
      };
      ws.onclose = function (ev) {
        if (ev.code === 4403 || ev.code === 4401) { onState("not allowed"); return; }
        onState("reconnecting…");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  function setText(root, field, text) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el) { el.textContent = text; }
    return el;
  }

  function drawJob(root, job) {
    var status = setText(root, "status", job.status);
    if (status) { status.className = "status status-" + job.status; }
    setText(root, "count", job.done + "/" + job.total);
    setText(root, "percent", job.percent + "%");
    setText(root, "message", job.message || "");
    var bar = root.querySelector('[data-field="bar"]');
    if (bar) { bar.style.width = job.percent + "%"; }
    var err = document.querySelector('[data-field="error"]');
    if (err) { err.textContent = job.error || ""; }
    var list = root.querySelector('[data-field="items"]');
    if (list && job.items) {
      list.innerHTML = "";
      job.items.forEach(function (it) {
        var li = document.createElement("li");
        li.className = "item item-" + it.status;
        li.setAttribute("data-photo", it.id);
        var text = it.name + ": " + it.status;
        if (it.duplicate_of) { text += " (copy of photo #" + it.duplicate_of + ")"; }
        if (it.reason) { text += " — " + it.reason; }
        li.textContent = text;
        list.appendChild(li);
      });
    }
    root.setAttribute("data-status", job.status);
  }

  // Each box also announces its snapshots and connection state ("job:snapshot", "job:state" events),
  // so a page can react to a job (the upload result page follows the extract job its upload names).
  function watch(root) {
    connect(root.getAttribute("data-ws-path"), function (job) {
      drawJob(root, job);
      root.dispatchEvent(new CustomEvent("job:snapshot", { detail: job }));
    }, function (state) {
      setText(root, "live", state === "live" ? "● live" : state);
      root.dispatchEvent(new CustomEvent("job:state", { detail: state }));
    });
  }
  window.flatsiteJobs = { watch: watch };

  document.querySelectorAll(".job-progress[data-ws-path]").forEach(watch);

  document.querySelectorAll("[data-jobs-live]").forEach(function (root) {
    connect(root.getAttribute("data-ws-path"), function (job) {
      var row = root.querySelector('[data-job-row="' + job.id + '"]');
      if (!row) { return; }
      var status = row.querySelector('[data-field="status"]');
      status.textContent = job.status;
      status.className = "status status-" + job.status;
      row.querySelector('[data-field="progress"]').textContent = job.done + "/" + job.total;
    }, function () {});
  });
})();
