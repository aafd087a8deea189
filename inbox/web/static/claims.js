// The claims pages, live: the board refreshes its rows when a claim the manager sees is
// filed or changes; a claim's page offers a reload when someone else changed it. Events
// come from /claims/stream with sequence numbers: after a gap or a reconnect the board
// refreshes anyway (it may have missed something).
(function () {
  "use strict";
  var root = document.querySelector("[data-claims-live]");
  if (!root || !window.EventSource) { return; }
  var kind = root.dataset.claimsLive;
  var me = root.dataset.me;
  var last = null;
  var pending = null;

  function refreshBoard() {
    if (pending) { return; }
    pending = fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("claims-live");
        var now = document.getElementById("claims-live");
        if (next && now) { now.replaceWith(next); }
      })
      .finally(function () { pending = null; });
  }

  function changed(data) {
    if (kind === "board") { refreshBoard(); return; }
    if (data.number !== root.dataset.number || String(data.by) === me) { return; }
    var notice = document.getElementById("claim-changed");
    if (notice) { notice.hidden = false; }
  }

  var source = window.omnihubStream("/claims/stream");
  source.addEventListener("hello", function (event) {
    var fresh = JSON.parse(event.data).fresh;
    // A new stream, or a change between the page's read and the stream: catch up.
    if ((last !== null || !fresh) && kind === "board") { refreshBoard(); }
    last = 0;
  });
  source.addEventListener("change", function (event) {
    var data = JSON.parse(event.data);
    var gap = last !== null && data.seq !== last + 1;
    last = data.seq;
    if (gap && kind === "board") { refreshBoard(); return; }
    changed(data);
  });
})();
