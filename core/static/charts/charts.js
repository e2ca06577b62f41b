// Draws every <canvas data-chart="key"> from the JSON the page holds in <script id="key">
// (core.charts.Chart.config), with one palette for the whole console. A dataset's "errorBars"
// ([low, high] per value) are drawn as whiskers with caps on its bars or points: twenty lines
// here rather than a plugin package.
(function () {
  "use strict";
  const palette = ["#2f6fb0", "#d9822b", "#3a9e5c", "#b8465f", "#7c5cbf", "#6b7785"];

  const errorBars = {
    id: "recsiteErrorBars",
    afterDatasetsDraw: function (chart) {
      const ctx = chart.ctx;
      const ink = getComputedStyle(chart.canvas).color || "#333";
      chart.data.datasets.forEach(function (dataset, i) {
        const meta = chart.getDatasetMeta(i);
        if (!dataset.errorBars || meta.hidden) return;
        const scale = chart.scales[dataset.yAxisID || "y"];
        ctx.save();
        ctx.strokeStyle = ink;
        ctx.lineWidth = 1.5;
        meta.data.forEach(function (element, j) {
          const bounds = dataset.errorBars[j];
          if (!bounds) return;
          const x = element.x, low = scale.getPixelForValue(bounds[0]), high = scale.getPixelForValue(bounds[1]);
          const cap = Math.min(8, (element.width || 16) / 3);
          ctx.beginPath();
          ctx.moveTo(x, low); ctx.lineTo(x, high);
          ctx.moveTo(x - cap, low); ctx.lineTo(x + cap, low);
          ctx.moveTo(x - cap, high); ctx.lineTo(x + cap, high);
          ctx.stroke();
        });
        ctx.restore();
      });
    },
  };

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
    config.plugins = (config.plugins || []).concat([errorBars]);
    // An interval reaching past the bars must fit the axis.
    config.data.datasets.forEach(function (dataset) {
      if (!dataset.errorBars) return;
      const axis = (config.options.scales || {})[dataset.yAxisID || "y"];
      const highs = dataset.errorBars.filter(Boolean).map(function (b) { return b[1]; });
      if (axis && highs.length) axis.suggestedMax = Math.max(axis.suggestedMax || 0, Math.max.apply(null, highs));
    });
    canvas.chart = new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
