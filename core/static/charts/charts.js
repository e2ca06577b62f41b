// Draws every <canvas data-chart="key"> from the JSON the page holds in <script id="key">
// (core.charts.Chart.config), with one palette for the whole console.
(function () {
  "use strict";
  const palette = ["#2f6fb0", "#d9822b", "#3a9e5c", "#b8465f", "#7c5cbf", "#6b7785"];

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") {
      return;
    }
    const config = JSON.parse(source.textContent);
    config.data.datasets.forEach(function (dataset, i) {
      const colour = palette[i % palette.length];
      const bar = (dataset.type || config.type) === "bar";
      dataset.borderColor = colour;
      dataset.backgroundColor = bar ? colour + "cc" : colour + "33";
      dataset.spanGaps = true;
      dataset.pointRadius = 2;
    });
    config.options = Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: false, // drawn at once: a test (or a person) sees the final picture
        plugins: { legend: { position: "bottom" } },
      },
      config.options || {}
    );
    canvas.chart = new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
