// Moderator clustering pages: selection helpers for the gallery, and the interactive 2-D map
// (Apache ECharts, served from static/vendor; data from the run's map.json).
(function () {
  "use strict";

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // Gallery: count checked photos, select all on the page.
  document.querySelectorAll("[data-selection-form]").forEach(function (form) {
    var counter = form.querySelector("[data-selected-count]");
    function update() {
      var n = form.querySelectorAll('input[name="photo"]:checked').length;
      if (counter) { counter.textContent = n + " selected"; }
    }
    form.addEventListener("change", update);
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.addEventListener("click", function () {
        var boxes = form.querySelectorAll('input[name="photo"]');
        var check = Array.prototype.some.call(boxes, function (b) { return !b.checked; });
        boxes.forEach(function (b) { b.checked = check; });
        update();
      });
    }
    update();
  });

  var el = document.getElementById("cluster-map");
  if (!el || typeof echarts === "undefined") { return; }

  function colour(i) { return "hsl(" + Math.round((i * 137.508) % 360) + ", 65%, 48%)"; }

  function buildSeries(data) {
    var index = {};
    var series = data.clusters.map(function (c, i) {
      index[c.id] = i;
      return { name: c.name, type: "scatter", symbolSize: 7, itemStyle: { color: colour(i), opacity: 0.85 },
               emphasis: { focus: "series" }, data: [] };
    });
    var noise = { name: "noise", type: "scatter", symbolSize: 5, itemStyle: { color: "#9ca3af", opacity: 0.6 }, data: [] };
    var pts = data.points;
    for (var k = 0; k < pts.photo.length; k++) {
      var item = [pts.x[k], pts.y[k], pts.photo[k], pts.p[k], pts.provisional[k]];
      var s = index[pts.cluster[k]];
      (s === undefined ? noise : series[s]).data.push(item);
    }
    series.push(noise);
    return series;
  }

  // Photo ids of exactly the dots inside the brush areas, from every series (each dot once).
  function brushedPhotos(params, series) {
    var seen = {};
    var ids = [];
    params.batch.forEach(function (batch) {
      batch.selected.forEach(function (s) {
        var rows = series[s.seriesIndex] ? series[s.seriesIndex].data : [];
        s.dataIndex.forEach(function (i) {
          var id = rows[i][2];
          if (!seen[id]) { seen[id] = true; ids.push(id); }
        });
      });
    });
    return ids;
  }

  var MAX_THUMBS = 200;

  // The selection form: ids to post, the count, and thumbnails of what the actions would touch.
  function showSelection(form, ids, thumb) {
    form.querySelector("[data-map-photos]").value = ids.join(",");
    form.querySelector("[data-selected-count]").textContent = ids.length + " selected";
    form.querySelectorAll("[data-needs-selection]").forEach(function (b) { b.disabled = ids.length === 0; });
    var strip = form.querySelector("[data-map-thumbs]");
    strip.textContent = "";
    ids.slice(0, MAX_THUMBS).forEach(function (id) {
      var img = document.createElement("img");
      img.src = thumb(id);
      img.alt = "photo " + id;
      img.title = "#" + id;
      img.loading = "lazy";
      img.setAttribute("data-photo", String(id));
      strip.appendChild(img);
    });
    if (ids.length > MAX_THUMBS) {
      var more = document.createElement("span");
      more.className = "muted";
      more.textContent = "and " + (ids.length - MAX_THUMBS) + " more";
      strip.appendChild(more);
    }
  }

  function draw(data) {
    var chart = echarts.init(el, null, { renderer: "canvas" });
    var series = buildSeries(data);
    var thumb = function (id) { return data.thumb_url.replace("{id}", id); };
    chart.setOption({
      animation: false,
      legend: { type: "scroll", orient: "vertical", right: 0, top: 40, bottom: 10 },
      grid: { left: 30, right: 190, top: 40, bottom: 30 },
      xAxis: { type: "value", scale: true, axisLabel: { show: false }, axisLine: { show: false },
               axisTick: { show: false }, splitLine: { show: false } },
      yAxis: { type: "value", scale: true, axisLabel: { show: false }, axisLine: { show: false },
               axisTick: { show: false }, splitLine: { show: false } },
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          var d = p.data;
          return '<img src="' + escapeHtml(thumb(d[2])) + '" width="160" height="115" style="object-fit:cover"><br>' +
            "#" + d[2] + " · " + escapeHtml(p.seriesName) + " · p=" + d[3].toFixed(2) + (d[4] ? " · provisional" : "");
        }
      },
      toolbox: { right: 190, feature: { brush: { type: ["rect", "polygon", "clear"] } } },
      // No brushLink: ECharts links series by data index, so "all" selected the n-th dot of every
      // cluster along with the n-th dot inside the box.
      brush: { xAxisIndex: 0, throttleType: "debounce", throttleDelay: 200,
               outOfBrush: { colorAlpha: 0.15 } },
      series: series
    });
    chart.on("click", function (p) {
      if (p.data) { window.location.href = data.photo_url.replace("{id}", p.data[2]) + "?run=" + data.run; }
    });
    var form = document.querySelector("[data-map-selection]");
    var selected = [];
    chart.on("brushSelected", function (params) {
      selected = brushedPhotos(params, series);
      if (form) { showSelection(form, selected, thumb); }
    });
    window.addEventListener("resize", function () { chart.resize(); });
    // Exposed for browser tests and for the console.
    window.clusterMap = { chart: chart, points: data.points.photo.length, selected: function () { return selected.slice(); } };
    el.setAttribute("data-ready", String(data.points.photo.length));
  }

  fetch(el.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) { throw new Error("map data: HTTP " + r.status); } return r.json(); })
    .then(draw)
    .catch(function (err) { el.textContent = "Could not load the map: " + err.message; });
})();
