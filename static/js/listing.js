// A listing page follows, live, the jobs of its photos still being processed: each job snapshot names
// its photos' outcomes (items), which redraw the photo grid and the uploads' job statuses.
(function () {
  "use strict";
  var grid = document.querySelector("[data-photo-grid]");
  if (!grid || !window.flatsiteJobs) { return; }
  var FINAL_JOBS = ["succeeded", "failed", "cancelled"];
  var WITH_THUMB = ["processed", "indexed", "duplicate"];

  function drawThumb(figure, item) {
    var placeholder = figure.querySelector(".placeholder");
    if (!placeholder) { return; }
    if (WITH_THUMB.indexOf(item.status) < 0) { placeholder.textContent = item.status; return; }
    var link = document.createElement("a");
    link.href = figure.getAttribute("data-search-url");
    link.title = "Find matches";
    var img = document.createElement("img");
    img.src = figure.getAttribute("data-thumb-url");
    img.alt = item.name;
    link.appendChild(img);
    placeholder.replaceWith(link);
  }

  function drawPhoto(item) {
    var figure = grid.querySelector('[data-photo="' + item.id + '"]');
    if (!figure || figure.getAttribute("data-status") === item.status) { return; }
    figure.setAttribute("data-status", item.status);
    var status = figure.querySelector('[data-field="status"]');
    status.textContent = item.status;
    status.className = "status status-" + item.status;
    var detail = figure.querySelector('[data-field="detail"]');
    detail.innerHTML = "";
    if (item.duplicate_of) {
      detail.appendChild(document.createElement("br"));
      detail.appendChild(document.createTextNode("copy of #" + item.duplicate_of));
    }
    if (item.reason) {
      detail.appendChild(document.createElement("br"));
      var err = document.createElement("span");
      err.className = "error";
      err.textContent = item.reason;
      detail.appendChild(err);
    }
    drawThumb(figure, item);
  }

  function drawJob(job) {
    document.querySelectorAll('[data-upload-job="' + job.id + '"]').forEach(function (el) {
      el.textContent = job.status;
      el.className = "status status-" + job.status;
      el.setAttribute("data-status", job.status);
    });
    (job.items || []).forEach(drawPhoto);
  }

  var jobs = {};
  grid.querySelectorAll('[data-status="received"][data-job]').forEach(function (figure) {
    jobs[figure.getAttribute("data-job")] = true;
  });
  document.querySelectorAll("[data-upload-job]").forEach(function (el) {
    if (FINAL_JOBS.indexOf(el.getAttribute("data-status")) < 0) { jobs[el.getAttribute("data-upload-job")] = true; }
  });
  Object.keys(jobs).forEach(function (id) {
    window.flatsiteJobs.connect("/ws/jobs/" + id + "/", drawJob, function () {});
  });
})();
