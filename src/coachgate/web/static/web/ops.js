/* The admin console's charts: every <canvas data-chart="name"> is drawn with Chart.js
   from the page's JSON (json_script "ops-chart-data"). The tables beside the charts hold
   the same numbers, so the page reads without this script too. */
(function () {
  "use strict";
  var COLOURS = ["#1d4ed8", "#15803d", "#b45309", "#b91c1c", "#6b7280", "#7c3aed"];

  function draw() {
    var source = document.getElementById("ops-chart-data");
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = data[canvas.dataset.chart];
      if (!chart) return;
      var horizontal = canvas.dataset.kind === "hbar";
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: chart.labels,
          datasets: chart.series.map(function (s, i) {
            return { label: s.label, data: s.data, backgroundColor: COLOURS[i % COLOURS.length],
                     borderRadius: 3, maxBarThickness: 28 };
          })
        },
        options: {
          indexAxis: horizontal ? "y" : "x",
          responsive: true,
          maintainAspectRatio: false,
          animation: reduce ? false : { duration: 300 },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
          scales: {
            x: { beginAtZero: true, ticks: { maxRotation: 0, autoSkip: true } },
            y: { beginAtZero: true, ticks: { precision: 0 } }
          }
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
