// The manager's presence: this tab says "online" (or the state chosen in the top bar) every
// 45 s while it is open; routing takes the manager offline two minutes after the last tab
// stops. The choice is kept in the browser, so every tab and the next visit keep it.
(function () {
  "use strict";
  var KEY = "omnihub.presence";
  var BEAT_MS = 45000;

  function chosen() {
    try { return window.localStorage.getItem(KEY) || "online"; } catch (e) { return "online"; }
  }
  function remember(state) {
    try { window.localStorage.setItem(KEY, state); } catch (e) { /* private mode: this tab only */ }
  }
  function picker() { return document.getElementById("presence-state"); }

  function beat() {
    var meta = document.querySelector("meta[name=csrf-token]");
    if (!meta) { return; }
    var state = chosen();
    var select = picker();
    if (select && select.value !== state) { select.value = state; }
    fetch("/inbox/presence", {
      method: "POST", body: new URLSearchParams({ state: state }), credentials: "same-origin",
      headers: { "X-CSRF-Token": meta.content, "X-Heartbeat": "1" }
    }).catch(function () {});
  }

  document.addEventListener("change", function (event) {
    if (event.target.id !== "presence-state") { return; }
    remember(event.target.value);
    beat();
  });
  window.addEventListener("storage", function (event) { if (event.key === KEY) { beat(); } });
  document.addEventListener("DOMContentLoaded", function () {
    beat();
  });
  window.setInterval(beat, BEAT_MS);
})();
