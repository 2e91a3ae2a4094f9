// Live job progress over a websocket. Every message is a full snapshot, so a page that
// reconnects (server restart, network blip) simply redraws from the next message, and a
// finished job's last snapshot alone draws its final state.
(function () {
  "use strict";

  // What a job's done/total counts: an ingest job counts photos; an extract job counts each photo
  // once per encoder, then once more for matching.
  var UNITS = { ingest: "photos", extract: "steps" };

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

  function setStatus(el, status) {
    if (!el) { return; }
    el.textContent = status;
    el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
  }

  function progressText(job) {
    var units = UNITS[job.kind];
    return job.done + "/" + job.total + (units ? " " + units : "");
  }

  // A finished job's last progress message ("saving clusters") is stale: say when it ended instead.
  function messageText(job) {
    if (!job.is_final) { return job.message || ""; }
    return job.finished_at ? "finished " + new Date(job.finished_at).toLocaleString() : "finished";
  }

  function drawItems(list, items) {
    list.innerHTML = "";
    items.forEach(function (it) {
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

  function drawJob(root, job) {
    setStatus(root.querySelector('[data-field="status"]'), job.status);
    setText(root, "count", job.done + "/" + job.total);
    setText(root, "percent", job.percent + "%");
    setText(root, "message", messageText(job));
    if (job.is_final) { setText(root, "live", ""); }
    var bar = root.querySelector('[data-field="bar"]');
    if (bar) { bar.style.width = job.percent + "%"; }
    var err = document.querySelector('[data-field="error"]');
    if (err) { err.textContent = job.error || ""; }
    // A finished job cannot be cancelled: its page's Cancel button goes.
    document.querySelectorAll('[data-job-cancel="' + job.id + '"]').forEach(function (el) {
      el.hidden = job.is_final;
    });
    var list = root.querySelector('[data-field="items"]');
    if (list && job.items) { drawItems(list, job.items); }
    root.setAttribute("data-status", job.status);
    root.setAttribute("data-final", job.is_final ? "true" : "false");
  }

  // Each box also announces its snapshots and connection state ("job:snapshot", "job:state" events),
  // so a page can react to a job (the upload result page follows the extract job its upload names).
  function watch(root) {
    connect(root.getAttribute("data-ws-path"), function (job) {
      drawJob(root, job);
      root.dispatchEvent(new CustomEvent("job:snapshot", { detail: job }));
    }, function (state) {
      // "● live" describes a job still moving; a finished one shows its final state only.
      var finished = root.getAttribute("data-final") === "true";
      setText(root, "live", finished ? "" : (state === "live" ? "● live" : state));
      root.dispatchEvent(new CustomEvent("job:state", { detail: state }));
    });
  }
  window.flatsiteJobs = { watch: watch, connect: connect };

  document.querySelectorAll(".job-progress[data-ws-path]").forEach(watch);

  function cell(row, text, field) {
    var td = document.createElement("td");
    td.textContent = text;
    if (field) { td.setAttribute("data-field", field); }
    row.appendChild(td);
    return td;
  }

  // A job the table does not have yet (created after the page loaded) gets a row on top.
  function newRow(root, job) {
    var row = document.createElement("tr");
    row.setAttribute("data-job-row", job.id);
    var link = document.createElement("a");
    link.href = root.getAttribute("data-job-url").replace(/0\/$/, job.id + "/");
    link.textContent = job.id;
    cell(row, "").appendChild(link);
    cell(row, job.kind);
    cell(row, job.status, "status").className = "status";
    cell(row, "", "progress");
    var me = JSON.parse(root.getAttribute("data-viewer"));
    cell(row, job.created_by === null ? "system" :
      (job.created_by === me.id ? me.name : "user #" + job.created_by));
    cell(row, job.created_at ? new Date(job.created_at).toLocaleString() : "");
    var empty = root.querySelector("[data-empty]");
    if (empty) { empty.remove(); }
    var body = root.querySelector("tbody");
    body.insertBefore(row, body.firstChild);
    return row;
  }

  // Job tables: the Jobs list (which adds new jobs: data-jobs-insert) and a training run's jobs.
  document.querySelectorAll("[data-jobs-live]").forEach(function (root) {
    connect(root.getAttribute("data-ws-path"), function (job) {
      var row = root.querySelector('[data-job-row="' + job.id + '"]');
      if (!row && root.hasAttribute("data-jobs-insert")) { row = newRow(root, job); }
      if (!row) { return; }
      setStatus(row.querySelector('[data-field="status"]'), job.status);
      row.querySelector('[data-field="progress"]').textContent = progressText(job);
    }, function () {});
  });
})();
