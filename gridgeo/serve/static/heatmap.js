/* The leaders' heat-map page: heat tiles, per-grid statistics, hot and cold spots.
   Its settings come from the page (#heatmap-config); every request goes to this server.
   Over a live incident store (CFG.live) the page follows new reports without a reload:
   every CFG.refresh seconds it re-reads the statistics and, when the store moved on,
   revalidates the visible heat tiles by ETag and swaps in only those that changed. */
(function () {
  "use strict";
  var CFG = JSON.parse(document.getElementById("heatmap-config").textContent);
  var state = window.gridgeoState = { tilesLoaded: 0, tileErrors: 0, heatLoads: 0, statsLoaded: 0, category: "", plan: CFG.plan || null,
    liveTicks: 0, tilesChecked: 0, tilesSwapped: 0, cursor: null };
  var narrow = window.matchMedia("(max-width: 700px)").matches;
  var sel = document.getElementById("category");
  CFG.categories.forEach(function (c) { var o = document.createElement("option"); o.value = c; o.textContent = c; sel.appendChild(o); });
  // plan versions: the grids the counts are attributed to; by default the base plan in force
  // today (the grids layer); another plan re-locates every incident in that plan's grids
  var planSel = document.getElementById("plan");
  var PLANS = CFG.plans || [];
  var LEVEL = { base: "基础网格", business: "业务网格" };
  function planLabel(p) {
    var when = p.from === null ? "草案" : p.from === "0001-01-01" ? (p.to ? "至 " + p.to.slice(0, 7) : "")
      : p.from.slice(0, 7) + " 起";
    return (p.name || p.id) + " · " + (LEVEL[p.level] || p.level) + " " + p.grids + " 个" + (when ? " · " + when : "");
  }
  PLANS.forEach(function (p) {
    var o = document.createElement("option");
    o.value = p.id;
    o.textContent = planLabel(p) + (p.id === CFG.plan ? " · 现行" : "");
    o.title = "方案 " + p.id + (p.from ? "，" + p.from + " 起" + (p.to ? "，至 " + p.to : "") : "");
    planSel.appendChild(o);
  });
  if (CFG.plan) planSel.value = CFG.plan;
  document.getElementById("planbox").hidden = PLANS.length < 2;
  function planName() {
    var p = PLANS.filter(function (q) { return q.id === planSel.value; })[0];
    return p ? (p.name || p.id) : "";
  }
  var map = state.map = L.map("map");
  var F = CFG.focus || CFG.bounds;  // the grids that have incidents, not the whole county
  map.fitBounds([[F[1], F[0]], [F[3], F[2]]], { padding: [6, 6] });
  var baseLayers = {};
  CFG.basemap.forEach(function (b) { baseLayers[b.name] = L.tileLayer(b.url, { subdomains: b.subdomains, maxZoom: 18 }).addTo(map); });

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; });
  }
  function gridName(p) { return esc(p.name || "网格 " + p.code); }
  function pctText(p) { return p.change_pct === null ? "—" : (p.change_pct > 0 ? "+" : "") + p.change_pct + "%"; }
  function query(withPlan) {
    var p = new URLSearchParams();
    if (sel.value) p.set("category", sel.value);
    var s = document.getElementById("start").value, e = document.getElementById("end").value;
    if (s) p.set("start", s);
    if (e) p.set("end", e);
    // the grids layer answers for today's plan; another plan is asked for by its id
    if (withPlan && planSel.value && planSel.value !== CFG.plan) p.set("plan", planSel.value);
    return p.toString();
  }
  var heat = L.tileLayer("heatmap/tiles/{z}/{x}/{y}.png?" + query(), { opacity: 0.85, maxZoom: 20, zIndex: 10 });
  heat.on("tileloadstart", function (e) { e.tile.dataset.src = e.tile.src; });  // its URL, kept when swapped
  heat.on("tileload", function () { state.tilesLoaded += 1; });
  heat.on("tileerror", function () { state.tileErrors += 1; });
  heat.on("load", function () { state.heatLoads += 1; });  // every visible tile is in
  heat.addTo(map);

  var RATE_COLORS = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
  var rateBreaks = [];
  function rateColor(v) {
    if (v === null || v === undefined) return "#cccccc";
    for (var i = 0; i < rateBreaks.length; i++) if (v <= rateBreaks[i]) return RATE_COLORS[i];
    return RATE_COLORS[RATE_COLORS.length - 1];
  }
  function tip(p) {
    var hot = { hot: "热点（事件明显扎堆）", cold: "冷点（事件明显偏少）", none: "一般" }[p.hotspot];
    return "<b>" + gridName(p) + "</b>" +
      "<br>本期事件 " + p.count + " 件，上期 " + p.previous + " 件（" + pctText(p) + "）" +
      "<br>每千户 " + (p.per_1000_households === null ? "—" : p.per_1000_households) + " 件" +
      "<br>" + hot;
  }
  var outlines = L.geoJSON(null, {
    style: { color: "#34495e", weight: 0.8, fill: true, fillOpacity: 0 },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(function () { return tip(f.properties); }, { sticky: true });
      layer.on("mouseover", function () { layer.setStyle({ weight: 2.5, color: "#000" }); });
      layer.on("mouseout", function () { outlines.resetStyle(layer); });
    }
  }).addTo(map);
  var choropleth = L.geoJSON(null, {
    style: function (f) { return { color: "#555", weight: 0.4, fillColor: rateColor(f.properties.per_1000_households), fillOpacity: 0.65 }; },
    interactive: false
  });
  var hot = L.geoJSON(null, {
    filter: function (f) { return f.properties.hotspot !== "none"; },
    style: function (f) { return { color: f.properties.hotspot === "hot" ? "#e31a1c" : "#1f78b4", weight: 3, fill: false, dashArray: f.properties.hotspot === "hot" ? null : "5 4" }; },
    interactive: false
  }).addTo(map);

  // the legend shows an entry for each layer that is on, and nothing else
  var LEGEND = [
    { id: "heat", layer: heat, html: function () { return "<b>事件密度</b><br>少<span class=\"ramp\"></span>多"; } },
    { id: "choropleth", layer: choropleth, html: function () {
      var h = "<b>每千户事件数</b>", lo = 0;
      for (var i = 0; i < rateBreaks.length; i++) {
        h += '<br><i style="background:' + RATE_COLORS[i] + '"></i>' + lo.toFixed(1) + " – " + rateBreaks[i].toFixed(1);
        lo = rateBreaks[i];
      }
      return h;
    } },
    { id: "hot", layer: hot, html: function () {
      return '<i style="background:none;border:2px solid #e31a1c"></i>热点（事件明显扎堆）<br><i style="background:none;border:2px dashed #1f78b4"></i>冷点（事件明显偏少）';
    } },
    { id: "outlines", layer: outlines, html: function () { return '<i style="background:none;border:1px solid #34495e"></i>网格边界'; } }
  ];
  state.layers = { heat: heat, outlines: outlines, choropleth: choropleth, hot: hot };
  var legend = L.control({ position: "bottomleft" });
  legend.onAdd = function () { this._div = L.DomUtil.create("div", "legend"); return this._div; };
  legend.addTo(map);
  function drawLegend() {
    var on = LEGEND.filter(function (e) { return map.hasLayer(e.layer); });
    legend._div.innerHTML = on.map(function (e) { return '<div data-layer="' + e.id + '">' + e.html() + "</div>"; }).join("");
    legend._div.style.display = on.length ? "" : "none";
  }
  map.on("overlayadd overlayremove", drawLegend);
  drawLegend();
  L.control.layers(baseLayers, { "热力图": heat, "网格边界": outlines, "每千户事件数": choropleth, "热点/冷点网格": hot }, { collapsed: narrow }).addTo(map);

  function quantiles(values, k) {
    var v = values.filter(function (x) { return x !== null; }).sort(function (a, b) { return a - b; });
    if (!v.length) return [0];
    var out = [];
    for (var i = 1; i <= k; i++) out.push(v[Math.min(v.length - 1, Math.floor(i * v.length / k) - 1 + (i === k ? 1 : 0))] || v[v.length - 1]);
    return out.filter(function (x, i, a) { return i === 0 || x > a[i - 1]; });
  }
  function sum(fc, key) { return fc.features.reduce(function (a, f) { return a + (f.properties[key] || 0); }, 0); }
  function showCases(fc) {
    // open cases are counted over every category and date: they are the work still to do
    var cases = fc.features.length > 0 && "open" in fc.features[0].properties;
    document.getElementById("worse").classList.toggle("cases", cases);
    document.body.classList.toggle("cases", cases);
    ["cases", "casenote"].forEach(function (id) { document.getElementById(id).hidden = !cases; });
    if (!cases) return;
    var open = sum(fc, "open"), late = sum(fc, "overdue");
    document.getElementById("cases").innerHTML = "未结 <b>" + open + "</b> 件，超期 <b" + (late ? ' class="late"' : "") + ">" + late + "</b> 件";
    document.getElementById("casenote").textContent = "未结：还没有结案的事件，不分类别和日期；超期：报告后超过 " + fc.overdueDays + " 个工作日还没有结案。";
  }
  var seq = 0, drawn = null;  // the query of the statistics on the page
  // quiet: a live update (no "加载中…", nothing redrawn when the store has not moved on);
  // resolves to whether the page was redrawn
  function loadStats(quiet) {
    var mine = ++seq;
    if (!quiet) document.getElementById("status").textContent = "加载中…";
    var asked = planSel.value || null, q = query(true);
    return fetch("stats/grids?" + q, { cache: "no-store" }).then(function (r) {
      if (!r.ok) return r.json().then(function (e) { throw new Error(e.description || r.status); });
      return r.json();
    }).then(function (fc) {
      if (mine !== seq) return false;
      // a live update that overtook a change of filters or plan draws the new answer
      if (quiet && fc.cursor === state.cursor && q === drawn) return false;
      drawn = q;
      state.cursor = fc.cursor === undefined ? null : fc.cursor;
      rateBreaks = quantiles(fc.features.map(function (f) { return f.properties.per_1000_households; }), 5);
      [outlines, choropleth, hot].forEach(function (l) { l.clearLayers(); l.addData(fc); });
      drawLegend();
      var total = sum(fc, "count");
      var nHot = fc.features.filter(function (f) { return f.properties.hotspot === "hot"; }).length;
      var nCold = fc.features.filter(function (f) { return f.properties.hotspot === "cold"; }).length;
      document.getElementById("status").textContent = (sel.value || "全部类别") + "：" + fc.window[0] + " 至 " + fc.window[1] + " 共 " + total + " 件";
      document.getElementById("windows").textContent = (PLANS.length > 1 ? "按网格方案「" + planName() + "」统计（" + fc.features.length + " 个网格）；" : "") + "本期 " + fc.window[0] + " 至 " + fc.window[1] + "；上期 " + fc.previousWindow[0] + " 至 " + fc.previousWindow[1] + (fc.outside ? "；" + fc.outside + " 件不在任何网格内" : "");
      document.getElementById("hotnote").textContent = "热点 " + nHot + " 个：事件明显扎堆的网格（地图上红色实线）；冷点 " + nCold + " 个：事件明显偏少的网格（蓝色虚线）。按 " + Math.round((1 - fc.alpha) * 100) + "% 的把握判断，偶然的多少不算。";
      var rows = fc.features.slice().sort(function (a, b) { return b.properties.change - a.properties.change; }).slice(0, 12);
      var tb = document.querySelector("#worse tbody");
      tb.innerHTML = "";
      rows.forEach(function (f) {
        var p = f.properties, tr = document.createElement("tr");
        tr.className = "row";
        tr.title = "网格编码 " + p.code;
        tr.dataset.code = p.code;
        tr.innerHTML = "<td>" + gridName(p) + "</td><td>" + p.count + "</td><td>" + p.previous + '</td><td class="' + (p.change > 0 ? "up" : "down") + '">' + (p.change > 0 ? "+" : "") + p.change + "</td><td>" + pctText(p) + "</td>" +
          ("open" in p ? '<td class="case">' + p.open + '</td><td class="case' + (p.overdue ? " late" : "") + '">' + p.overdue + "</td>" : "");
        tr.onclick = function () { map.fitBounds(L.geoJSON(f).getBounds(), { maxZoom: 16 }); };
        tb.appendChild(tr);
      });
      showCases(fc);
      state.statsLoaded += 1;
      state.category = sel.value;
      state.plan = asked;
      return true;
    }).catch(function (err) {
      if (!quiet) document.getElementById("status").textContent = "出错：" + err.message;
      throw err;
    });
  }

  // ---- live: follow the store without a reload ------------------------------------------
  function dataURL(blob) {
    return new Promise(function (ok, fail) {
      var r = new FileReader();
      r.onload = function () { ok(r.result); };
      r.onerror = fail;
      r.readAsDataURL(blob);
    });
  }
  // revalidate every visible heat tile (the browser sends its ETag: unchanged tiles are a
  // 304) and put a new image in place of each one that changed, decoded first: no flicker
  function refreshTiles() {
    var jobs = Object.keys(heat._tiles).map(function (key) {
      var t = heat._tiles[key], old = t.el, url = old.dataset.src;
      if (!t.current || !t.loaded || !url) return null;
      state.tilesChecked += 1;
      return fetch(url, { cache: "no-cache" }).then(function (r) {
        var etag = r.headers.get("ETag");
        if (!r.ok || (etag && etag === old.dataset.etag)) return null;
        return r.blob().then(dataURL).then(function (src) {
          var img = new Image();
          img.src = src;
          return img.decode().then(function () {
            if (heat._tiles[key] !== t || t.el !== old) return;  // moved or filtered meanwhile
            img.className = old.className;
            img.style.cssText = old.style.cssText;
            img.alt = "";
            img.setAttribute("role", "presentation");
            img.dataset.src = url;
            img.dataset.etag = etag || "";
            old.parentNode.replaceChild(img, old);
            t.el = img;
            state.tilesSwapped += 1;
          });
        });
      }).catch(function () { /* the next update tries again */ });
    });
    return Promise.all(jobs);
  }
  var liveEl = document.getElementById("live");
  var stale = false;  // tiles were redrawn for new filters: check them on the next update
  var timer = null;
  function clock() { return new Date().toTimeString().slice(0, 8); }
  function tick() {
    if (document.hidden) return schedule();
    var q = query(true);
    state.liveTicks += 1;
    loadStats(true).then(function (changed) {
      liveEl.textContent = "实时更新 " + clock();
      liveEl.classList.remove("off");
      if ((changed || stale) && q === query(true)) {
        stale = false;
        return refreshTiles();
      }
    }, function () {
      liveEl.textContent = "实时更新中断，正在重试";
      liveEl.classList.add("off");
    }).then(schedule, schedule);
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(tick, Math.max(1, Number(CFG.refresh) || 5) * 1000);
  }

  function update() { heat.setUrl("heatmap/tiles/{z}/{x}/{y}.png?" + query()); stale = true; loadStats().catch(function () {}); }
  sel.addEventListener("change", update);
  // the heat tiles are the same points whatever the plan: only the grids and counts change
  planSel.addEventListener("change", function () { loadStats().catch(function () {}); });
  document.getElementById("start").addEventListener("change", update);
  document.getElementById("end").addEventListener("change", update);
  loadStats().catch(function () {});
  if (CFG.live) {
    // reports keep coming: the window may end on any day up to today
    var now = new Date();
    now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
    var today = now.toISOString().slice(0, 10);
    ["start", "end"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el.max < today) el.max = today;
    });
    liveEl.hidden = false;
    liveEl.textContent = "实时更新";
    document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
    schedule();
  }
})();
