// 电话登记: what the classifier and the gazetteer make of the call, shown while the seat types (300 ms after the
// last key, the older request cancelled), a point picked on the map, and for a handed-over call the guessed 事项 one
// click away and a changed address sent as the corrected place. Text goes in with textContent only: it is the
// caller's words, never markup.
(function () {
  "use strict";
  const form = document.getElementById("phone-form");
  if (!form) return;
  const text = document.getElementById("phone-text");
  const place = document.getElementById("phone-place");
  const lon = form.elements.namedItem("lon");
  const lat = form.elements.namedItem("lat");
  const code = form.elements.namedItem("matter_code");
  const classBox = document.getElementById("suggest-class");
  const placeBox = document.getElementById("suggest-place");
  const pointStatus = document.getElementById("point-status");
  const clearPoint = document.getElementById("clear-point");
  const mapEl = document.getElementById("phone-map");
  const map = mapEl ? mapEl.map : null;
  const accepting = form.dataset.mode === "accept";
  const originalPlace = place.value.trim();
  const HINT = "点击地图可选定位置";
  let picked = lon.value !== "" && lat.value !== ""; // by the seat on the map, not by the geocoder
  let marker = null;
  let timer = 0;
  let controller = null;
  let waiting = null; // the answer being fetched, so that 受理 can wait for the place it brings
  let cellsAt = map ? [Number(mapEl.dataset.lat), Number(mapEl.dataset.lon)] : null;
  const drawn = new Set();

  function el(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function percent(p) {
    return Math.round(p * 100) + "%";
  }

  function loadCells(at) {
    // minimap.js drew the cells around where the map opened; a point far from there brings its own
    if (map.distance(cellsAt, at) < 400) return;
    cellsAt = at;
    fetch("/console/map/cells.geojson?near=" + at[1] + "," + at[0], { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((cells) => {
        if (!cells) return;
        const fresh = cells.features.filter((f) => !drawn.has(f.properties.code));
        fresh.forEach((f) => drawn.add(f.properties.code));
        L.geoJSON({ type: "FeatureCollection", features: fresh }, {
          style: { color: "#9aa4b2", weight: 1, fillOpacity: 0.05 },
        }).bindTooltip((layer) => layer.feature.properties.name || layer.feature.properties.code).addTo(map);
      });
  }

  function showMarker(x, y) {
    if (!map) return;
    const at = [y, x];
    if (marker) marker.setLatLng(at);
    else marker = L.circleMarker(at, { radius: 8, color: "#1456b8", weight: 3 }).addTo(map);
    map.panTo(at);
    loadCells(at);
  }

  function showClass(c) {
    classBox.replaceChildren();
    if (!c) {
      classBox.textContent = "输入反映内容后显示事项建议";
      return;
    }
    classBox.append(el("p", "", "分类判断：" + c.decision_label + (c.severity === "紧急" ? " · 紧急" : "")));
    if (c.scope_reason) classBox.append(el("p", "tag warn", c.scope_reason));
    const list = el("ol");
    for (const g of c.top) {
      const item = el("li", "", g.code + " " + g.name + "（" + percent(g.p) + "）");
      if (code) {
        const use = el("button", "", "选用");
        use.type = "button";
        use.setAttribute("aria-label", "选用事项 " + g.name);
        use.addEventListener("click", () => {
          code.value = g.code;
          code.focus();
        });
        item.append(" ", use);
      }
      list.append(item);
    }
    classBox.append(list);
  }

  function showPlace(p) {
    placeBox.replaceChildren();
    if (accepting && !picked) lon.value = lat.value = "";
    if (!p) {
      placeBox.textContent = "输入地点后显示定位与单元网格";
      return;
    }
    if (!p.found) {
      placeBox.append(el("p", "tag warn", "未能定位：" + (p.reason || "")));
      return;
    }
    const where = p.matched || "所选位置";
    placeBox.append(el("p", "", "定位：" + where + "（" + p.method + "，可信度 " + percent(p.confidence) + "）"));
    if (p.note) placeBox.append(el("p", "muted", p.note));
    const g = p.grid;
    placeBox.append(
      el("p", "", g ? "单元网格：" + g.code + " " + g.name + " · " + g.street + g.community + " · " + g.area_class
        + " 类区域" : "不在任何单元网格内"),
    );
    showMarker(p.lon, p.lat);
    // a handed-over call keeps the IVR's place unless the seat gave another one
    if (accepting && !picked && g && place.value.trim() && place.value.trim() !== originalPlace) {
      lon.value = p.lon;
      lat.value = p.lat;
      placeBox.append(el("p", "muted", "受理时位置将更正为此处"));
    }
  }

  function ask() {
    timer = 0;
    const q = new URLSearchParams({ text: text.value.trim().slice(0, 500), place: place.value.trim().slice(0, 200) });
    if (picked) {
      q.set("lon", lon.value);
      q.set("lat", lat.value);
    }
    if (!q.get("text") && !q.get("place") && !picked) {
      showClass(null);
      showPlace(null);
      return Promise.resolve();
    }
    if (controller) controller.abort();
    controller = new AbortController();
    const answer = fetch("/console/phone/suggest?" + q, {
      credentials: "same-origin",
      signal: controller.signal,
      headers: { Accept: "application/json" },
    })
      .then((r) => r.json().then((body) => (r.ok ? body : Promise.reject(new Error(body.error || r.status)))))
      .then((data) => {
        showClass(data.classification);
        showPlace(data.place);
      })
      .catch((err) => {
        if (err.name !== "AbortError") classBox.textContent = "暂时无法获取建议（" + err.message + "），不影响登记";
      })
      .finally(() => {
        if (waiting === answer) waiting = null;
      });
    waiting = answer;
    return answer;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(ask, ms);
  }

  function setPoint(x, y) {
    picked = x !== null;
    lon.value = picked ? x.toFixed(7) : "";
    lat.value = picked ? y.toFixed(7) : "";
    clearPoint.style.display = picked ? "" : "none";
    pointStatus.textContent = picked ? "已选点 " + lon.value + ", " + lat.value : HINT;
    if (picked) showMarker(x, y);
    else if (marker) {
      marker.remove();
      marker = null;
    }
    schedule(0);
  }

  if (map && mapEl.dataset.fresh) {
    // no place yet: the map opens on the middle of the city, which is no one's report
    map.eachLayer((layer) => {
      if (layer instanceof L.CircleMarker) layer.remove();
    });
    map.setZoom(15);
  }
  if (map) map.on("click", (e) => setPoint(e.latlng.lng, e.latlng.lat));
  clearPoint.addEventListener("click", () => setPoint(null, null));
  text.addEventListener("input", () => schedule(300));
  place.addEventListener("input", () => schedule(300));
  if (accepting) {
    form.addEventListener("submit", (e) => {
      if (!timer && !waiting) return;
      e.preventDefault(); // the changed address is not located yet: locate it, then accept
      clearTimeout(timer);
      (timer ? ask() : waiting).then(() => form.submit());
    });
  }
  if (picked) {
    clearPoint.style.display = "";
    pointStatus.textContent = "已选点 " + lon.value + ", " + lat.value;
    showMarker(Number(lon.value), Number(lat.value));
  }
  if (text.value.trim() || place.value.trim() || picked) schedule(0);
})();
