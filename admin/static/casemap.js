// 案件地图: the city's own base map (cells, 社区 and 街道 borders, roads from /console/map/*.geojson; tiles only when
// the centre configured a tile URL) and the open cases coloured by their light. The filters fetch the case layer
// again without reloading the page; the legend's boxes show or hide a light.
(function () {
  "use strict";
  const el = document.getElementById("casemap");
  const form = document.getElementById("map-filters");
  const legend = document.getElementById("map-legend");
  const count = document.getElementById("map-count");
  const error = document.getElementById("map-error");
  const list = document.querySelector("#map-list ol");
  if (!el || !window.L) return;

  const COLOURS = { green: "#2e9d4b", yellow: "#f0b429", red: "#d64545", none: "#8a94a3" };
  const LIGHT_NAMES = { green: "绿灯", yellow: "黄灯", red: "红灯", none: "无时限" };
  const RANK = { none: 0, green: 1, yellow: 2, red: 3 };
  const CLUSTER_ABOVE = 300; // fewer markers than this are drawn one by one
  const LISTED = 200;
  const AREA_STROKE = { A: "#b2182b", C: "#4d4d4d" };

  const map = L.map(el, { preferCanvas: true, attributionControl: false, maxZoom: 19, zoomSnap: 0.25 });
  map.setView([30, 120.6], 14);
  el.map = map;
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  for (const [name, z] of [["grid", 350], ["borders", 360]]) {
    map.createPane(name).style.zIndex = String(z);
  }
  const gridRenderer = L.canvas({ pane: "grid" });
  const borderRenderer = L.canvas({ pane: "borders" });

  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function node(tag, text, attrs) {
    const n = document.createElement(tag);
    if (text !== undefined) n.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    return n;
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) =>
      r.json().then(
        (body) => (r.ok ? body : Promise.reject(new Error(body.error || "请求失败（" + r.status + "）"))),
        () => Promise.reject(new Error("请求失败（" + r.status + "）")),
      ),
    );
  }
  function fail(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  // --- the base map ---------------------------------------------------------------------------------------------
  const cells = L.geoJSON(null, {
    renderer: gridRenderer,
    style: (f) => ({
      color: AREA_STROKE[f.properties.area_class] || "#9aa4b2",
      weight: f.properties.area_class === "B" ? 0.6 : 1.2,
      fillColor: "#dfe6ee",
      fillOpacity: el.dataset.tiles ? 0.05 : 0.45,
    }),
  }).bindTooltip((layer) => {
    const p = layer.feature.properties;
    return esc(p.name + "（" + p.code + "）" + " · " + p.street + p.community + " · " + p.area_class + " 类区域");
  }, { sticky: true });
  const communities = L.geoJSON(null, {
    renderer: borderRenderer,
    interactive: false,
    style: { color: "#222", weight: 1.4, dashArray: "6 3", fill: false },
  });
  const streets = L.geoJSON(null, {
    renderer: borderRenderer,
    interactive: false,
    style: { color: "#0f4c9c", weight: 3, opacity: 0.7, fill: false },
  });
  const roads = L.geoJSON(null, {
    renderer: borderRenderer,
    style: { color: "#ffffff", weight: 5, opacity: 0.95 },
  }).bindTooltip((layer) => esc(layer.feature.properties.name), { sticky: true });
  for (const layer of [cells, communities, streets, roads]) layer.addTo(map);
  L.control
    .layers(null, { 单元网格: cells, 社区界: communities, 街道界: streets, 道路: roads }, { collapsed: true })
    .addTo(map);

  getJSON("/console/map/cells.geojson")
    .then((fc) => {
      cells.addData(fc);
      if (fc.features.length) map.fitBounds(cells.getBounds(), { padding: [10, 10] });
    })
    .catch((e) => fail("单元网格载入失败：" + e.message));
  getJSON("/console/map/base.geojson")
    .then((fc) => {
      for (const f of fc.features) {
        ({ community: communities, street: streets, road: roads })[f.properties.kind].addData(f);
      }
    })
    .catch((e) => fail("社区界与道路载入失败：" + e.message));

  // --- the cases ------------------------------------------------------------------------------------------------
  let features = [];
  let layer = null;
  let asked = 0;

  function shownLights() {
    const on = new Set();
    for (const box of legend.querySelectorAll("input[type=checkbox]")) if (box.checked) on.add(box.value);
    return on;
  }
  function popup(p) {
    const box = node("div", undefined, { class: "map-popup" });
    const title = node("p");
    title.append(node("a", "案卷 " + p.number, { href: "/console/cases/" + encodeURIComponent(p.number) }));
    box.append(title);
    box.append(node("p", (p.name || "未分类") + (p.code ? "（" + p.code + "）" : "")));
    box.append(node("p", "状态：" + p.state + " · " + LIGHT_NAMES[p.light] + (p.department ? " · 部门 " + p.department : "")));
    if (p.address) box.append(node("p", "地址：" + p.address));
    return box;
  }
  function clusterIcon(cluster) {
    // filled with the light most of its cases have, ringed red when any is late; the tooltip gives the counts
    const by = { red: 0, yellow: 0, green: 0, none: 0 };
    for (const m of cluster.getAllChildMarkers()) by[m.options.light] += 1;
    const most = Object.keys(by).reduce((a, b) => (by[b] > by[a] ? b : a));
    const n = cluster.getChildCount();
    cluster.bindTooltip(
      esc("共 " + n + " 件：红灯 " + by.red + " · 黄灯 " + by.yellow + " · 绿灯 " + by.green +
        (by.none ? " · 无时限 " + by.none : "") + "（放大查看）"),
    );
    return L.divIcon({
      html: "<span>" + n + "</span>",
      className: "case-cluster " + most + (by.red && most !== "red" ? " late" : ""),
      iconSize: L.point(36, 36),
    });
  }
  function draw() {
    if (layer) layer.remove();
    const on = shownLights();
    const shown = features.filter((f) => on.has(f.properties.light));
    layer =
      shown.length > CLUSTER_ABOVE
        ? L.markerClusterGroup({
            chunkedLoading: true,
            disableClusteringAtZoom: 18,
            maxClusterRadius: 50,
            showCoverageOnHover: false,
            iconCreateFunction: clusterIcon,
          })
        : L.featureGroup();
    const markers = shown.map((f) => {
      const p = f.properties;
      const [lon, lat] = f.geometry.coordinates;
      return L.circleMarker([lat, lon], {
        radius: 7,
        color: "#fff",
        weight: 1.5,
        fillColor: COLOURS[p.light],
        fillOpacity: 0.95,
        light: p.light,
      })
        .bindTooltip(esc(p.number + " " + (p.name || "未分类") + " · " + p.state + " · " + LIGHT_NAMES[p.light]))
        .bindPopup(() => popup(p));
    });
    if (layer.addLayers) layer.addLayers(markers);
    else markers.forEach((m) => layer.addLayer(m));
    layer.addTo(map);
    const by = { red: 0, yellow: 0, green: 0, none: 0 };
    for (const f of shown) by[f.properties.light] += 1;
    count.textContent =
      "显示 " + shown.length + " 件未办结案件（红灯 " + by.red + " · 黄灯 " + by.yellow + " · 绿灯 " + by.green +
      (by.none ? " · 无时限 " + by.none : "") + "）" + (shown.length < features.length ? "，共 " + features.length + " 件" : "");
    const listed = shown.slice().sort((a, b) => RANK[b.properties.light] - RANK[a.properties.light]).slice(0, LISTED);
    list.replaceChildren(
      ...listed.map((f) => {
        const p = f.properties;
        const item = node("li");
        item.append(node("span", "", { class: "light " + p.light, title: LIGHT_NAMES[p.light] }));
        item.append(node("a", p.number, { href: "/console/cases/" + encodeURIComponent(p.number) }));
        item.append(" " + (p.name || "未分类") + " · " + p.state + (p.address ? " · " + p.address : ""));
        return item;
      }),
    );
  }
  function query() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) params.set(k, String(v).trim());
    return params.toString();
  }
  function load() {
    const q = query();
    const mine = ++asked;
    count.textContent = "正在载入案件……";
    history.replaceState(null, "", "/console/map" + (q ? "?" + q : ""));
    getJSON("/console/map/cases.geojson" + (q ? "?" + q : ""))
      .then((fc) => {
        if (mine !== asked) return; // a later filter's answer is the one to show
        fail("");
        features = fc.features;
        draw();
      })
      .catch((e) => {
        if (mine !== asked) return;
        fail("筛选条件有误：" + e.message);
        count.textContent = "";
      });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (form.reportValidity()) load();
  });
  form.addEventListener("change", (e) => {
    if (e.target.name !== "code" || e.target.checkValidity()) load();
  });
  legend.addEventListener("change", draw);
  load();
})();
