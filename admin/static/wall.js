// 监督指挥: the wall draws itself from /console/wall.json and asks again every poll_seconds (marked as the page's own
// request, so it keeps no idle session alive). The map is the case map's base map (its GeoJSON routes): the grid
// coloured by open cases, the open cases as dots by light (a click opens the case), the 监督员's last positions.
// The charts are ECharts (served from node_modules); this file only maps the figures onto their options.
(function () {
  "use strict";
  const script = document.currentScript;
  const el = document.getElementById("wall-map");
  const status = document.getElementById("wall-status");
  if (!el || !window.L || !window.echarts) return;
  const POLL_MS = 1000 * Number(script.dataset.pollSeconds || 30);
  const LIGHT = { red: "#d64545", yellow: "#f0b429", green: "#2e9d4b", none: "#8a94a3" };
  const HEAT = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]; // ColorBrewer YlOrRd, 5 classes
  const EMPTY = "#1b2d4a";
  const TEXT = { fontSize: 16, color: "#d6e2f3" };
  let last = null;

  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function getJSON(url, poll) {
    const headers = { Accept: "application/json" };
    if (poll) headers["X-Console-Poll"] = "1";
    return fetch(url, { credentials: "same-origin", headers }).then((r) => {
      if (r.redirected || !(r.headers.get("Content-Type") || "").includes("json")) {
        return Promise.reject(new Error("登录已失效，请重新登录"));
      }
      return r.json().then((body) => (r.ok ? body : Promise.reject(new Error(body.error || "请求失败（" + r.status + "）"))));
    });
  }
  function say(text, error) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  }

  // --- the map --------------------------------------------------------------------------------------------------
  const map = L.map(el, { preferCanvas: true, attributionControl: false, zoomSnap: 0.25, maxZoom: 19 });
  map.setView([30, 120.6], 14);
  el.map = map;
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  // own panes, so the dots stay above the cells whichever GeoJSON arrives last: the 783 cells on a canvas, the dots
  // and borders in SVG (a canvas takes every click over it, even where it drew nothing)
  const panes = {};
  for (const [name, z] of [["heat", 350], ["borders", 360], ["cases", 450], ["people", 460]]) {
    map.createPane(name).style.zIndex = String(z);
    panes[name] = name === "heat" ? L.canvas({ pane: name }) : L.svg({ pane: name });
  }
  let counts = {};
  let breaks = [1];
  function heatClass(n) {
    let k = -1;
    for (const b of breaks) if (n >= b) k += 1;
    return k;
  }
  function cellStyle(feature) {
    const k = heatClass(counts[feature.properties.code] || 0);
    return { color: "#2c4468", weight: 0.6, fillColor: k < 0 ? EMPTY : HEAT[k], fillOpacity: k < 0 ? 0.6 : 0.8 };
  }
  const cells = L.geoJSON(null, { style: cellStyle, renderer: panes.heat })
    .bindTooltip((layer) => {
      const p = layer.feature.properties;
      return esc(p.name + "（" + p.code + "）· " + p.street + p.community + " · 未办结 " + (counts[p.code] || 0) + " 件");
    }, { sticky: true })
    .addTo(map);
  const streets = L.geoJSON(null, {
    renderer: panes.borders,
    interactive: false,
    style: { color: "#7fb2ff", weight: 2.5, fill: false },
  }).addTo(map);
  const cases = L.layerGroup().addTo(map);
  const collectors = L.layerGroup().addTo(map);
  getJSON("/console/map/cells.geojson")
    .then((fc) => {
      cells.addData(fc);
      if (fc.features.length) map.fitBounds(cells.getBounds(), { padding: [6, 6] });
    })
    .catch((e) => say("网格载入失败：" + e.message, true));
  getJSON("/console/map/base.geojson")
    .then((fc) => streets.addData(fc.features.filter((f) => f.properties.kind === "street")))
    .catch((e) => say("街道界载入失败：" + e.message, true));

  function heatLegend() {
    const box = document.getElementById("heat-legend");
    box.replaceChildren(
      ...breaks.map((b, k) => {
        const item = document.createElement("span");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = HEAT[k];
        const upper = k + 1 < breaks.length ? breaks[k + 1] - 1 : null;
        item.append(swatch, upper === null ? "≥" + b : upper === b ? String(b) : b + "–" + upper);
        item.style.marginRight = "8px";
        return item;
      }),
    );
  }
  function drawMap(w) {
    counts = w.cells;
    const top = Math.max(0, ...Object.values(counts));
    const step = Math.max(1, Math.ceil(top / HEAT.length));
    breaks = [];
    for (let b = 1; b <= top && breaks.length < HEAT.length; b += step) breaks.push(b);
    cells.setStyle(cellStyle);
    heatLegend();
    cases.clearLayers();
    for (const m of w.markers.slice().reverse()) {  // the red ones last, drawn on top
      L.circleMarker([m.lat, m.lon], {
        renderer: panes.cases,
        radius: 7,
        color: "#fff",
        weight: 1.5,
        fillColor: LIGHT[m.light],
        fillOpacity: 1,
      })
        .bindTooltip(esc(m.number + " " + (m.name || "未分类") + " · " + m.state + " · " + w.names.lights[m.light]))
        .on("click", () => window.location.assign("/console/cases/" + encodeURIComponent(m.number)))
        .addTo(cases);
    }
    collectors.clearLayers();
    for (const c of w.collectors) {
      const at = c.at.slice(11, 16);
      L.circleMarker([c.lat, c.lon], {
        renderer: panes.people,
        radius: 9,
        color: "#fff",
        weight: 2.5,
        fillColor: "#1e90ff",
        fillOpacity: 1,
      })
        .bindTooltip(esc(c.name + " " + at), { permanent: true, direction: "right", className: "collector-name" })
        .on("click", () => window.location.assign("/console/cases/" + encodeURIComponent(c.number)))
        .addTo(collectors);
    }
    const shown = w.markers.length < w.located ? "（显示红灯优先的 " + w.markers.length + " 件）" : "";
    document.getElementById("map-count").textContent =
      "未办结 " + Object.values(w.lights).reduce((a, b) => a + b, 0) + " 件，有位置 " + w.located + " 件" + shown;
  }

  // --- the charts -----------------------------------------------------------------------------------------------
  const charts = {};
  for (const name of ["channels", "majors", "top", "departments", "stages", "lights"]) {
    charts[name] = echarts.init(document.getElementById("chart-" + name), "dark", { renderer: "canvas" });
  }
  const base = {
    backgroundColor: "transparent",
    textStyle: TEXT,
    tooltip: { trigger: "axis", textStyle: { fontSize: 16 } },
    grid: { left: 8, right: 18, top: 36, bottom: 6, containLabel: true },
  };
  const axisLabel = { fontSize: 15, color: "#c3d2e8" };
  function stacked(series, days, names) {
    return {
      ...base,
      legend: { top: 0, type: "scroll", textStyle: { fontSize: 15, color: "#d6e2f3" } },
      xAxis: { type: "category", data: days.map((d) => d.slice(5)), axisLabel },
      yAxis: { type: "value", minInterval: 1, axisLabel },
      series: series.map((s) => ({ type: "bar", stack: "all", name: names[s.code] || s.name || s.code, data: s.counts })),
    };
  }
  function bars(labels, values, options) {
    return {
      ...base,
      tooltip: { ...base.tooltip, axisPointer: { type: "shadow" } },
      grid: { ...base.grid, top: 8 },
      xAxis: { type: "value", axisLabel, ...(options.max ? { max: options.max } : { minInterval: 1 }) },
      yAxis: { type: "category", inverse: true, data: labels, axisLabel: { ...axisLabel, width: 190, overflow: "truncate" } },
      series: [{ type: "bar", data: values, itemStyle: { color: options.color }, label: { show: true, position: "right",
        fontSize: 16, color: "#e8eef8", formatter: options.label } }],
    };
  }
  function drawCharts(w) {
    charts.channels.setOption(stacked(w.by_channel, w.days, w.names.channels), { notMerge: true });
    charts.majors.setOption(stacked(w.by_major, w.days, {}), { notMerge: true });
    charts.top.setOption(
      bars(w.top.map((t) => t.name), w.top.map((t) => t.count), { color: "#5b8ff9", label: "{c} 件" }),
      { notMerge: true },
    );
    const depts = w.departments.slice().sort((a, b) => (b.rate ?? -1) - (a.rate ?? -1));
    charts.departments.setOption(
      bars(
        depts.map((d) => d.name),
        depts.map((d) => ({ value: d.rate, closed: d.closed, onTime: d.on_time })),
        { color: "#5ad8a6", max: 100, label: (p) => p.value + "%（" + p.data.onTime + "/" + p.data.closed + "）" },
      ),
      { notMerge: true },
    );
    const round = (h) => Math.round(h * 10) / 10;
    const hours = (key) => ({ type: "bar", name: key === "median_h" ? "中位数" : "90%",
      data: w.stages.map((s) => round(s[key])), label: { show: true, position: "right", fontSize: 15, color: "#e8eef8" } });
    charts.stages.setOption(
      {
        ...base,
        tooltip: { ...base.tooltip, axisPointer: { type: "shadow" } },
        legend: { top: 0, textStyle: { fontSize: 15, color: "#d6e2f3" } },
        grid: { ...base.grid, right: 44 },
        xAxis: { type: "value", axisLabel },
        yAxis: { type: "category", inverse: true, data: w.stages.map((s) => w.names.stages[s.state] || s.state), axisLabel },
        series: [hours("median_h"), hours("p90_h")],
      },
      { notMerge: true },
    );
    charts.lights.setOption(
      {
        ...base,
        tooltip: { trigger: "item", textStyle: { fontSize: 16 } },
        legend: { orient: "vertical", right: 8, top: "middle", textStyle: { fontSize: 16, color: "#d6e2f3" } },
        series: [{
          type: "pie",
          radius: ["42%", "72%"],
          center: ["38%", "52%"],
          label: { formatter: "{c}", fontSize: 18, color: "#e8eef8" },
          data: ["red", "yellow", "green", "none"]
            .filter((k) => w.lights[k])
            .map((k) => ({ name: w.names.lights[k], value: w.lights[k], itemStyle: { color: LIGHT[k] } })),
        }],
      },
      { notMerge: true },
    );
  }

  // --- the counts -----------------------------------------------------------------------------------------------
  function drawTiles(w) {
    document.querySelector('[data-figure="today"]').textContent = w.today.total;
    document.querySelector('[data-figure="today-channels"]').textContent = Object.entries(w.today.channels)
      .map(([k, n]) => (w.names.channels[k] || k) + " " + n)
      .join(" · ");
    for (const g of w.groups) {
      const tile = document.querySelector('[data-group="' + g.name + '"]');
      tile.querySelector(".value").textContent = g.count;
      for (const [part, n] of Object.entries(g.parts)) {
        const b = tile.querySelector('[data-part="' + part + '"]');
        if (b) b.textContent = n;
      }
    }
    for (const light of ["red", "yellow"]) document.querySelector('[data-light="' + light + '"]').textContent = w.lights[light];
  }

  function refresh(poll) {
    return getJSON("/console/wall.json", poll)
      .then((w) => {
        last = w;
        drawTiles(w);
        drawMap(w);
        drawCharts(w);
        say("更新于 " + w.now.slice(11, 19) + "，每 " + Math.round(POLL_MS / 1000) + " 秒刷新");
        el.dataset.updated = w.now;
      })
      .catch((e) => say(e.message + (last ? "（显示的是 " + last.now.slice(11, 19) + " 的数据）" : ""), true));
  }
  window.addEventListener("resize", () => {
    for (const chart of Object.values(charts)) chart.resize();
    map.invalidateSize();
  });
  refresh(false);
  setInterval(() => refresh(true), POLL_MS);
})();
