// A small map of one place: the point, and the grid cells around it from /console/map/cells.geojson?near= (its own
// cell outlined). No tiles from the internet: the grid is the base map unless the centre configured a tile URL
// (data-tiles on the element). Cell names come from an imported file: they go into tooltips as text, never markup.
(function () {
  "use strict";
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function label(p) {
    return esc((p.name || "单元网格") + "（" + p.code + "）" + (p.street || "") + (p.community || "") +
      (p.area_class ? " · " + p.area_class + " 类区域" : ""));
  }
  for (const el of document.querySelectorAll("[data-lon][data-lat].minimap")) {
    const point = [Number(el.dataset.lat), Number(el.dataset.lon)];
    const map = L.map(el, { attributionControl: false }).setView(point, 17);
    if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
    L.circleMarker(point, { radius: 7, color: "#d64545", weight: 3 }).addTo(map);
    const url = "/console/map/cells.geojson?near=" + el.dataset.lon + "," + el.dataset.lat;
    fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((cells) => {
      if (!cells) return;
      const own = (f) => f.properties.code === el.dataset.cell;
      L.geoJSON(cells, {
        style: (f) => ({ color: own(f) ? "#1456b8" : "#9aa4b2", weight: own(f) ? 3 : 1, fillOpacity: 0.05 }),
      }).bindTooltip((layer) => label(layer.feature.properties), { sticky: true }).addTo(map).bringToBack();
    }).catch(() => {}); // the point alone is still a map
    el.map = map; // pages that let a click correct the place listen on it
  }
})();
