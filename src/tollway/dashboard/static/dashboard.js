/* Tollway dashboard: draws the charts from their data attributes and wires the copy buttons. No data is ever
   evaluated as code: charts read JSON from data-chart (HTML-escaped by the server's templates). */
(function () {
  "use strict";
  var palette = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#64748b"];

  function draw(canvas) {
    if (!window.Chart || canvas.dataset.drawn) { return; }
    var spec;
    try { spec = JSON.parse(canvas.dataset.chart); } catch (e) { return; }
    canvas.dataset.drawn = "1";
    var line = spec.type === "line";
    var datasets = spec.series.map(function (s, i) {
      var color = palette[i % palette.length];
      return { label: s.name, data: s.values, backgroundColor: color, borderColor: color, borderWidth: line ? 2 : 0,
               pointRadius: line ? 2 : 0, tension: 0.2 };
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { stacked: !!spec.stacked, grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true } },
          y: { stacked: !!spec.stacked, beginAtZero: true, ticks: { callback: function (v) { return Number(v).toLocaleString(); } } }
        }
      }
    });
  }

  function drawAll(root) {
    var canvases = (root || document).querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) { return; }
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
