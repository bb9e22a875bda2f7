// 综合评价: a bar chart per table (ECharts) in the table's own order, coloured by grade, and the 区域 grades on the
// city's grid (Leaflet, the cells of /console/map/cells.geojson coloured by the grade of the region each lies in).
// A click on a bar or a cell opens the cases of that row. The figures come with the page; nothing is computed here.
(function () {
  "use strict";
  const GRADE_COLOURS = { A: "#1a9850", B: "#91cf60", C: "#fee08b", D: "#fc8d59", E: "#d73027" };
  const NONE = "#e5e8ec";
  const WINDOW = 20; // bars in view at once; a slider scrolls through more

  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) =>
      r.ok ? r.json() : Promise.reject(new Error("请求失败（" + r.status + "）")),
    );
  }

  // --- one bar chart per table --------------------------------------------------------------------------------------
  if (window.echarts) {
    for (const el of document.querySelectorAll(".evalchart")) {
      const data = JSON.parse(el.dataset.chart);
      const n = data.names.length;
      el.style.height = 70 + Math.min(n, WINDOW) * 26 + "px";
      const chart = echarts.init(el, null, { renderer: "canvas", locale: "ZH" });
      chart.setOption({
        animation: false,
        title: { text: data.title, textStyle: { fontSize: 14 } },
        grid: { left: 8, right: n > WINDOW ? 56 : 24, top: 34, bottom: 20, containLabel: true },
        tooltip: { trigger: "item", formatter: (p) => esc(p.name) + "：" + p.value + "（" + data.grades[p.dataIndex] + "）" },
        xAxis: { type: "value", min: 0, max: 100 },
        yAxis: { type: "category", inverse: true, data: data.names, axisLabel: { width: 180, overflow: "truncate" } },
        dataZoom:
          n > WINDOW ? [{ type: "slider", yAxisIndex: 0, startValue: 0, endValue: WINDOW - 1, right: 8, width: 18 }] : [],
        series: [
          {
            type: "bar",
            barMaxWidth: 18,
            data: data.scores.map((v, i) => ({ value: v, itemStyle: { color: GRADE_COLOURS[data.grades[i]] } })),
            label: { show: true, position: "right", formatter: (p) => p.value + " " + data.grades[p.dataIndex] },
            markLine: {
              silent: true,
              symbol: "none",
              lineStyle: { type: "dashed", color: "#9aa4b2" },
              label: { show: false },
              data: data.bounds.map((b) => ({ xAxis: b })),
            },
          },
        ],
      });
      chart.on("click", (p) => {
        if (p.componentType === "series") window.location.href = data.links[p.dataIndex];
      });
      window.addEventListener("resize", () => chart.resize());
      el.chart = chart;
    }
  }

  // --- the 区域 grades on the grid ----------------------------------------------------------------------------------
  const el = document.getElementById("evalmap");
  if (!el || !window.L) return;
  const info = JSON.parse(el.dataset.regions);
  const regionOf = (f) => info.regions[f.properties.code.slice(0, info.size)];
  const map = L.map(el, { preferCanvas: true, attributionControl: false, maxZoom: 19, zoomSnap: 0.25 });
  map.setView([30, 120.6], 13);
  el.map = map;
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  const cells = L.geoJSON(null, {
    style: (f) => {
      const r = regionOf(f);
      return { color: "#ffffff", weight: 0.6, fillColor: r ? GRADE_COLOURS[r[2]] : NONE, fillOpacity: el.dataset.tiles ? 0.6 : 0.9 };
    },
  })
    .bindTooltip((layer) => {
      const p = layer.feature.properties;
      const r = regionOf(layer.feature);
      const where = p.name + "（" + p.code + "）· " + p.street + p.community;
      return esc(where + (r ? " · " + r[0] + "：" + r[1] + " 分，" + r[2] + " 级" : " · 本期无评价"));
    }, { sticky: true })
    .on("click", (e) => {
      const r = regionOf(e.layer.feature);
      if (r) window.location.href = r[3];
    })
    .addTo(map);
  const streets = L.geoJSON(null, { interactive: false, style: { color: "#0f4c9c", weight: 2.5, opacity: 0.8, fill: false } });
  streets.addTo(map);
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const box = L.DomUtil.create("div", "card evallegend");
    box.innerHTML =
      Object.entries(GRADE_COLOURS).map(([g]) => '<span class="grade ' + g + '">' + g + "</span>").join(" ") +
      ' <span class="grade none">无</span>';
    return box;
  };
  legend.addTo(map);
  getJSON("/console/map/cells.geojson").then((fc) => {
    cells.addData(fc);
    if (fc.features.length) map.fitBounds(cells.getBounds(), { padding: [8, 8] });
    el.dataset.ready = "1";
  });
  getJSON("/console/map/base.geojson").then((fc) => {
    for (const f of fc.features) if (f.properties.kind === "street") streets.addData(f);
  });
})();
