// The upload result page says, live, when the batch's photos become searchable: the upload's job
// names its extraction job when it finishes; a box for that job is added and followed (jobs.js).
(function () {
  "use strict";
  var section = document.getElementById("searchable");
  var textsEl = document.getElementById("searchable-texts");
  var template = document.getElementById("extract-job-template");
  if (!section || !textsEl || !template || !window.flatsiteJobs) { return; }
  var texts = JSON.parse(textsEl.textContent);
  var slot = document.getElementById("extract-job");

  function say(state) {
    section.setAttribute("data-state", state);
    section.querySelector('[data-field="searchable"]').textContent = texts[state];
  }

  function followExtract(root) {
    root.addEventListener("job:snapshot", function (ev) {
      var job = ev.detail;
      if (!job.is_final) { say("extracting"); return; }
      say(job.status === "succeeded" ? "now" : "extract-stopped");
    });
    root.addEventListener("job:state", function (ev) {
      if (ev.detail !== "not allowed") { return; }
      // Another upload queued this job: its page is not ours to open, so name it without a link.
      var note = document.createElement("p");
      note.textContent = "Extraction job #" + root.getAttribute("data-job-id") +
        " (queued by another upload). Reload this page to see when it finishes.";
      root.replaceWith(note);
    });
  }

  function addExtractBox(jobId) {
    if (slot.querySelector(".job-progress, p")) { return; }  // already on the page
    var root = template.content.firstElementChild.cloneNode(true);
    root.setAttribute("data-job-id", jobId);
    root.setAttribute("data-ws-path", "/ws/jobs/" + jobId + "/");
    var link = root.querySelector('[data-field="link"]');
    link.href = template.getAttribute("data-job-url").replace(/0\/$/, jobId + "/");
    link.textContent = "#" + jobId;
    slot.appendChild(root);
    say("extracting");
    followExtract(root);
    window.flatsiteJobs.watch(root);
  }

  var existing = slot.querySelector(".job-progress");
  if (existing) { followExtract(existing); }
  var upload = document.querySelector("#upload-job .job-progress");
  if (!upload) { return; }
  upload.addEventListener("job:snapshot", function (ev) {
    var job = ev.detail;
    if (!job.is_final) { return; }
    if (job.status !== "succeeded") { say("stopped"); return; }
    var extractId = job.result && job.result.extract_job;
    if (extractId) { addExtractBox(extractId); } else if (section.getAttribute("data-state") === "processing") {
      say("no-extract");
    }
  });
})();
