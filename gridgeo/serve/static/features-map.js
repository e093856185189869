/* The map of the features on an f=html page of the OGC API – Features (vendored Leaflet, no basemap). */
(function () {
  "use strict";
  var el = document.getElementById("map");
  var data = JSON.parse(document.getElementById("features").textContent);
  var latlon = el.getAttribute("data-axis") === "latlon";  // EPSG:4326 / 4490 list latitude first
  var map = L.map(el, { attributionControl: false });
  var layer = L.geoJSON(data, {
    coordsToLatLng: latlon ? function (c) { return L.latLng(c[0], c[1]); } : L.GeoJSON.coordsToLatLng,
    style: { color: "#1f3b57", weight: 1.5, fillColor: "#3b82c4", fillOpacity: 0.25 },
    pointToLayer: function (f, ll) {
      return L.circleMarker(ll, { radius: 5, color: "#c0392b", weight: 1.5, fillOpacity: 0.7 });
    },
    onEachFeature: function (f, l) {
      l.bindTooltip(f.properties.label.replace(/[&<>"]/g, function (c) {
        return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
      }), { sticky: true });
      if (f.properties.href) l.on("click", function () { window.location.href = f.properties.href; });
    }
  }).addTo(map);
  var b = layer.getBounds();
  if (b.isValid()) map.fitBounds(b, { padding: [12, 12], maxZoom: 17 });
  else map.setView([0, 0], 1);
  window.gridgeoFeatureMap = { map: map, layer: layer, count: data.features.length };
})();
