/* A generation's page shows its images as they arrive: the section with [data-ws-connect] opens
   one websocket through htmx's ws extension, and every message is a set of out-of-band fragments.
   Loaded once from base.html (no inline script: see SECURE_CSP). Boosted navigation (hx-boost)
   swaps the body without running <head> scripts, so the extension is loaded on first use, then
   ws-connect is set so htmx opens exactly one socket. */
(function () {
  "use strict";
  if (window.nerLive) return;
  window.nerLive = true;

  function connect(live) {
    if (live.hasAttribute("ws-connect")) return;
    live.setAttribute("ws-connect", live.dataset.wsConnect);
    htmx.process(live);
  }

  var waiting = [];
  function start(live) {
    if (htmx.createWebSocket) return connect(live); // set by the ws extension when it loads
    waiting.push(live);
    if (document.getElementById("htmx-ws-extension")) return;
    var script = document.createElement("script");
    script.id = "htmx-ws-extension";
    script.src = live.dataset.wsScript;
    script.onload = function () {
      waiting.splice(0).forEach(function (el) { if (document.contains(el)) connect(el); });
    };
    document.head.appendChild(script);
  }

  htmx.onLoad(function (root) {
    var found = root.matches && root.matches("[data-ws-connect]") ? [root] : [];
    if (root.querySelectorAll) found = found.concat(Array.from(root.querySelectorAll("[data-ws-connect]")));
    found.forEach(start);
  });
})();
