// 城管通 in the browser (the 监督员's pages): the phone's position into every answer and new report, the task list
// sorted by distance, the classifier's suggestion and the place the GPS point falls in, and an outbox. A form is
// first kept on the phone (IndexedDB: its fields and its photos as Blobs), then sent; what cannot be sent now waits
// there and goes when the network returns (the "online" event and a retry timer). Each form carries its own
// idempotency key, so a submission that reached the server before the connection dropped is done once, not twice.
// Text from the server goes in with textContent only.
(function () {
  "use strict";
  const STORE = "outbox";
  const RETRY_MS = 20000;
  const SUGGEST_MS = 400;
  const $ = (id) => document.getElementById(id);

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context; a plain-http intranet still has getRandomValues
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function token() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // --- the outbox, in IndexedDB ------------------------------------------------------------------------------
  let opened = null;
  function db() {
    if (!opened) {
      opened = new Promise((resolve, reject) => {
        if (!window.indexedDB) return reject(new Error("此浏览器不能离线保存"));
        const req = indexedDB.open("gridline-tasks", 1);
        req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return opened;
  }

  function tx(mode, work) {
    return db().then((d) => new Promise((resolve, reject) => {
      const t = d.transaction(STORE, mode);
      const req = work(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result);
      t.onerror = t.onabort = () => reject(t.error);
    }));
  }
  const keep = (item) => tx("readwrite", (s) => s.add(item)); // → its id
  const kept = () => tx("readonly", (s) => s.getAll()); // oldest first
  const forget = (id) => tx("readwrite", (s) => s.delete(id));

  let waiting = null; // the id of what this page just submitted: its answer decides where the page goes
  let busy = false;
  let again = false;

  function note(text, error) {
    const el = $("outbox-note");
    if (!el) return;
    el.textContent = text;
    el.className = "flash " + (error ? "error" : "ok");
    el.hidden = !text;
  }

  async function count() {
    let n = 0;
    try {
      n = (await kept()).length;
    } catch (e) {
      n = 0;
    }
    const box = $("outbox");
    if (box) {
      box.hidden = n === 0;
      $("outbox-count").textContent = String(n);
    }
    return n;
  }

  function send(item) {
    const body = new FormData();
    for (const [name, value] of item.fields) body.append(name, value);
    for (const [name, blob, filename] of item.files) body.append(name, blob, filename);
    return fetch(item.action, {
      method: "POST", body, credentials: "same-origin", headers: { "X-CSRF-Token": token() },
    });
  }

  async function freshToken() {
    // a page open since before a new login holds an old token: take the session's current one
    const resp = await fetch("/console/tasks", { credentials: "same-origin", headers: { "X-Console-Poll": "1" } });
    const found = /name="csrf-token" content="([^"]+)"/.exec(await resp.text());
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (found && meta) meta.content = found[1];
  }

  function refusal(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const message = doc.querySelector(".flash.error");
    return message ? message.textContent.trim() : "服务器未能办理";
  }

  // "sent", "refused" (the server said no: kept no longer, the person is told why) or "later" (no network, the
  // server in trouble, or the login ended: kept, and everything after it waits too, so the order holds)
  async function attempt(item) {
    let resp;
    try {
      resp = await send(item);
      if (resp.status === 403) {
        await freshToken();
        resp = await send(item);
      }
    } catch (e) {
      return "later";
    }
    if (resp.status === 401) {
      note("登录已失效：请重新登录，手机上保存的内容将在登录后发送", true);
      return "later";
    }
    if (resp.status >= 500) return "later";
    await forget(item.id);
    if (resp.ok) {
      if (item.id === waiting) location.assign(resp.url); // the page the server sent us to, with its message
      else note("已发送：" + item.label, false);
      return "sent";
    }
    const why = refusal(await resp.text());
    note((item.id === waiting ? "未能提交：" : "“" + item.label + "”未能办理：") + why, true);
    if (item.id === waiting) release(true);
    return "refused";
  }

  async function drain() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        for (const item of await kept()) {
          if ((await attempt(item)) === "later") {
            if (item.id === waiting) parked();
            break;
          }
        }
      } while (again);
    } catch (e) {
      note("手机上的待发送内容无法读取：" + e.message, true);
    } finally {
      busy = false;
      await count();
    }
  }

  // --- forms -------------------------------------------------------------------------------------------------
  let current = null; // the form being sent

  function release(enable) {
    if (!current) return;
    for (const b of current.querySelectorAll("button[type=submit]")) b.disabled = !enable;
    if (enable) current = null;
  }

  function parked() {
    // not sent now, but safe on the phone: the answer is given (no second one from this page), a report form is
    // ready for the next problem with a new key
    note("网络不通：已保存在手机上，恢复联网后自动发送", true);
    const form = current;
    waiting = null;
    current = null;
    if (!form) return;
    if (form.id === "report-form") {
      form.reset();
      form.elements.namedItem("key").value = newKey();
      for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = false;
      fill();
      return;
    }
    for (const other of document.querySelectorAll("form.answer")) {
      for (const control of other.elements) control.disabled = true;
    }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-queue]") || event.defaultPrevented) return;
    event.preventDefault();
    if (current) return; // one submission at a time from a page
    current = form;
    release(false);
    const fields = [];
    const files = [];
    for (const [name, value] of new FormData(form)) {
      if (name === "csrf_token") continue; // sent as a header from the page that sends it
      if (value instanceof File) {
        if (value.name) files.push([name, value, value.name]);
      } else {
        fields.push([name, value]);
      }
    }
    note("正在提交…", false);
    try {
      waiting = await keep({ action: form.getAttribute("action"), label: form.dataset.queue, fields, files });
    } catch (e) {
      current = null;
      form.submit(); // no storage on this phone: an ordinary post, without the offline safety
      return;
    }
    await count();
    drain();
  });

  window.addEventListener("online", drain);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) for (const k of document.querySelectorAll("form[data-queue] input[name=key]")) k.value = newKey();
  });
  const retry = $("outbox-send");
  if (retry) retry.addEventListener("click", drain);
  setInterval(() => {
    if (navigator.onLine !== false) count().then((n) => n && drain());
  }, RETRY_MS);

  // --- where the phone is ------------------------------------------------------------------------------------
  let fix = null;

  function metres(lon1, lat1, lon2, lat2) {
    const r = Math.PI / 180;
    const a = Math.sin(((lat2 - lat1) * r) / 2) ** 2 +
      Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.sin(((lon2 - lon1) * r) / 2) ** 2;
    return 12742000 * Math.asin(Math.sqrt(a));
  }

  function gpsText(light, text) {
    const box = $("gps");
    if (!box) return;
    box.querySelector(".light").className = "light " + light;
    $("gps-text").textContent = text;
    $("gps-retry").hidden = light !== "red";
  }

  function fill() {
    if (!fix) return;
    for (const form of document.querySelectorAll("form[data-gps]")) {
      const set = (name, value) => {
        const input = form.elements.namedItem(name);
        if (input) input.value = value;
      };
      set("gps_lon", fix.lon.toFixed(7));
      set("gps_lat", fix.lat.toFixed(7));
      set("gps_accuracy", fix.accuracy.toFixed(1));
      set("lon", fix.lon.toFixed(7));
      set("lat", fix.lat.toFixed(7));
      // back to the list sorted from here, without asking for the position once more
      if (form.elements.namedItem("next")) set("next", "/console/tasks?lon=" + fix.lon.toFixed(6) + "&lat=" + fix.lat.toFixed(6));
    }
  }

  function located(position) {
    const c = position.coords;
    if (fix && fix.accuracy < c.accuracy && Date.now() - fix.at < 60000) return; // keep the better recent fix
    fix = { lon: c.longitude, lat: c.latitude, accuracy: c.accuracy, at: Date.now() };
    fill();
    let text = "已定位，精度 ±" + Math.round(fix.accuracy) + " 米";
    let light = fix.accuracy <= 50 ? "green" : "yellow";
    const point = $("case-point");
    if (point && point.dataset.lon) {
      const d = metres(fix.lon, fix.lat, Number(point.dataset.lon), Number(point.dataset.lat));
      text += "，距案发点 " + Math.round(d) + " 米";
      if (d > Number(point.dataset.radius)) {
        text += "（超过 " + point.dataset.radius + " 米，提交后将标记为不在现场附近）";
        light = "yellow";
      }
    }
    gpsText(light, text);
    if ($("report-form")) suggestSoon();
  }

  function unlocated(error) {
    const why = { 1: "未允许定位", 2: "无法取得位置", 3: "定位超时" }[error.code] || "定位失败";
    gpsText("red", why + "：仍可提交，将记为无定位" + ($("report-form") ? "（请填写地点）" : ""));
  }

  function locate() {
    if (!navigator.geolocation) return unlocated({ code: 0 });
    gpsText("none", "正在获取定位…");
    navigator.geolocation.getCurrentPosition(located, unlocated, { enableHighAccuracy: true, timeout: 20000 });
  }

  if (document.querySelector("form[data-gps]")) {
    locate();
    $("gps-retry").addEventListener("click", locate);
    if (navigator.geolocation) {
      navigator.geolocation.watchPosition(located, () => {}, { enableHighAccuracy: true, maximumAge: 30000 });
    }
  }

  // the list: once the position is known, the server sorts the tasks by distance from it
  const where = $("where");
  if (where && !where.dataset.sorted && navigator.geolocation) {
    navigator.geolocation.getCurrentPosition((p) => {
      const url = new URL(location.href);
      url.searchParams.set("lon", p.coords.longitude.toFixed(6));
      url.searchParams.set("lat", p.coords.latitude.toFixed(6));
      location.replace(url.toString());
    }, () => {
      where.textContent = "未能定位：按等候时间排序，等候最久的在前";
    }, { timeout: 15000, maximumAge: 60000 });
  }

  // --- a new problem: the place of the GPS point, the classifier's 事项, a searchable list ---------------------
  const report = $("report-form");
  let timer = 0;
  let asking = null;

  function suggestSoon() {
    clearTimeout(timer);
    timer = setTimeout(suggest, SUGGEST_MS);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function choose(code) {
    const select = $("matter");
    select.value = code;
    $("matter-filter").value = "";
    filter();
  }

  function showPlace(place) {
    const box = $("place");
    if (!place) return;
    if (place.found === false) {
      box.textContent = place.reason || "该位置不在任何单元网格内";
      return;
    }
    const grid = place.grid || {};
    box.textContent = "位置：" + (place.matched || "（坐标）") +
      (grid.code ? " · 网格 " + grid.code + (grid.street ? "（" + grid.street + (grid.community || "") + "）" : "") : "");
  }

  function showClass(cls) {
    const box = $("suggest");
    box.replaceChildren();
    if (!cls || !cls.top || !cls.top.length) return;
    box.append(el("span", "muted", "建议事项（" + cls.decision_label + "）："));
    for (const t of cls.top) {
      const b = el("button", "", t.name + " " + Math.round(t.p * 100) + "%");
      b.type = "button";
      b.addEventListener("click", () => choose(t.code));
      box.append(b);
    }
  }

  async function suggest() {
    const q = new URLSearchParams();
    const text = $("report-text").value.trim().slice(0, 500);
    if (text) q.set("text", text);
    if (fix) {
      q.set("lon", fix.lon.toFixed(7));
      q.set("lat", fix.lat.toFixed(7));
    }
    if (!q.toString()) return;
    if (asking) asking.abort();
    asking = new AbortController();
    try {
      const resp = await fetch("/console/tasks/suggest?" + q, {
        credentials: "same-origin", signal: asking.signal, headers: { "X-Console-Poll": "1" },
      });
      if (!resp.ok) return;
      const found = await resp.json();
      showPlace(found.place);
      showClass(found.classification);
    } catch (e) {
      // offline or superseded: the report can still be made without the suggestion
    }
  }

  function filter() {
    const words = $("matter-filter").value.trim();
    for (const group of $("matter").querySelectorAll("optgroup")) {
      let any = false;
      for (const option of group.children) {
        option.hidden = Boolean(words) && !(option.textContent.includes(words) || group.label.includes(words));
        any = any || !option.hidden;
      }
      group.hidden = !any;
    }
  }

  if (report) {
    $("report-text").addEventListener("input", suggestSoon);
    $("matter-filter").addEventListener("input", filter);
  }

  count().then((n) => n && navigator.onLine !== false && drain());
})();
