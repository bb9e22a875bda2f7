// The 受理 queue's keys and place correction. Every decision is a form posted to the generic action route; this file
// only chooses, focuses and submits those forms (requestSubmit, so validation and console.js's confirmations apply),
// and fills the accept form's hidden lon/lat/address from the gazetteer (GET /api/v1/locate) or a click on the map.
(function () {
  "use strict";
  const list = document.getElementById("queue-rows");
  const accept = document.getElementById("accept-form");
  const search = document.getElementById("place-search");
  const chosen = document.getElementById("place-chosen");
  const other = document.getElementById("code-other-choice");
  const otherCode = document.getElementById("code-other");
  const mapEl = document.querySelector(".queue-detail .minimap");
  let marker = null;

  // --- moving between reports -------------------------------------------------------------------------------
  function rows() {
    return Array.from(list ? list.querySelectorAll("tr[data-href]") : []);
  }
  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.findIndex((r) => r.classList.contains("selected"));
    const next = all[Math.min(all.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
    if (next && next !== all[at]) window.location.href = next.dataset.href;
  }
  if (list) {
    list.addEventListener("click", (e) => {
      const row = e.target.closest("tr[data-href]");
      if (row && !e.target.closest("a")) window.location.href = row.dataset.href;
    });
    // a poll answered by the login page (the session ended) must not land inside the list
    document.body.addEventListener("htmx:beforeSwap", (e) => {
      const url = e.detail.xhr && e.detail.xhr.responseURL;
      if (url && url.indexOf("/console/login") >= 0) {
        e.detail.shouldSwap = false;
        window.location.reload();
      }
    });
  }

  // --- the 事项 code ----------------------------------------------------------------------------------------
  if (other && otherCode) {
    other.closest("label").hidden = false; // without this file the choice would post an empty code
    otherCode.addEventListener("input", () => {
      other.value = otherCode.value.trim();
      other.checked = true;
    });
  }
  function pick(key) {
    const radio = accept && accept.querySelector('input[name="matter_code"][data-key="' + key + '"]');
    if (!radio) return;
    radio.checked = true;
    if (radio === other) otherCode.focus();
  }
  if (accept) {
    accept.addEventListener("submit", (e) => {
      if (other && other.checked && !/^\d{4,5}$/.test(otherCode.value.trim())) {
        e.preventDefault();
        otherCode.focus();
        otherCode.setCustomValidity("请输入 4 或 5 位事项代码");
        otherCode.reportValidity();
        otherCode.setCustomValidity("");
      }
    });
  }

  // --- correcting the place ---------------------------------------------------------------------------------
  function say(text) {
    if (chosen) chosen.textContent = text;
  }
  function setPlace(lon, lat, address, grid) {
    accept.elements.lon.value = lon.toFixed(7);
    accept.elements.lat.value = lat.toFixed(7);
    accept.elements.address.value = address;
    say("位置更正为：" + address + " · 网格 " + grid.code + " " + (grid.name || "") + "（Esc 撤销）");
    const map = mapEl && mapEl.map;
    if (map) {
      if (marker) marker.remove();
      marker = L.circleMarker([lat, lon], { radius: 8, color: "#1456b8", weight: 3, fillOpacity: 0.4 }).addTo(map);
      map.panTo([lat, lon]);
    }
  }
  function resetPlace() {
    if (!accept || !accept.elements.lon.value) return;
    accept.elements.lon.value = accept.elements.lat.value = accept.elements.address.value = "";
    if (marker) marker.remove();
    marker = null;
    say("已撤销位置更正，按原位置受理");
  }
  function lookup(url, clicked) {
    say("正在定位……");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => r.json())
      .then((found) => {
        if (!found.grid) {
          say(found.reason || found.error || "该位置不在任何单元网格内，请重新选择");
          return;
        }
        const address = found.matched || found.query;
        if (clicked) setPlace(clicked.lng, clicked.lat, found.note || address, found.grid);
        else setPlace(found.lon, found.lat, address, found.grid);
      })
      .catch(() => say("定位服务暂不可用，请稍后再试"));
  }
  if (accept && search) {
    search.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = search.elements.q.value.trim();
      if (q) lookup("/api/v1/locate?q=" + encodeURIComponent(q), null);
    });
    if (mapEl && mapEl.map) {
      mapEl.map.on("click", (e) => {
        const { lng, lat } = e.latlng;
        lookup("/api/v1/locate?lon=" + lng.toFixed(7) + "&lat=" + lat.toFixed(7), e.latlng);
      });
    }
  }

  // --- the keyboard -----------------------------------------------------------------------------------------
  function typing(el) {
    if (!el) return false;
    if (el.tagName === "INPUT") return !["radio", "checkbox", "button", "submit"].includes(el.type);
    return el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable;
  }
  function submit(selector) {
    const form = document.querySelector(selector);
    if (form) form.requestSubmit();
  }
  function focus(selector) {
    const field = document.querySelector(selector);
    if (field) {
      field.focus();
      if (field.select) field.select();
    }
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const here = document.activeElement;
    if (e.key === "Escape") {
      if (typing(here)) here.blur();
      else resetPlace();
      return;
    }
    if (typing(here)) return;
    const onControl = here && here !== document.body && here.matches("a, button, input, audio, summary");
    switch (e.key) {
      case "j":
        move(1);
        break;
      case "k":
        move(-1);
        break;
      case "ArrowDown":
      case "ArrowUp":
        if (onControl) return; // radios and players use the arrows themselves
        move(e.key === "ArrowDown" ? 1 : -1);
        break;
      case "1":
      case "2":
      case "3":
      case "4":
      case "0":
        pick(e.key);
        break;
      case "Enter":
        if (onControl && !(here.type === "radio")) return; // a focused link or button does its own thing
        submit("#accept-form");
        break;
      case "a":
        submit("#accept-form");
        break;
      case "v":
        submit("form.act-send_verify");
        break;
      case "r":
        focus('form.act-reject input[name="reason"]');
        break;
      case "m":
        submit("form.dup-merge");
        break;
      case "/":
        focus('#place-search input[name="q"]');
        break;
      default:
        return;
    }
    e.preventDefault();
  });
})();
