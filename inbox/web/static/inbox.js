// The workspace's own JavaScript: CSRF header for htmx, panes on a phone, Ctrl+Enter,
// the live stream (refresh what an event changes; reload after a gap) and the traffic cop.
(function () {
  "use strict";

  function workspace() { return document.getElementById("workspace"); }
  function composer() { return document.getElementById("composer"); }
  function openConversation() { var w = workspace(); return w ? w.dataset.conversation : ""; }

  // CSRF: htmx requests carry the session's token (forms carry it as a field too).
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector("meta[name=csrf-token]");
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });

  // Phone: one pane at a time.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-show-pane]");
    if (button && workspace()) { workspace().dataset.pane = button.dataset.showPane; }
  });

  // Drafts, canned replies, mentions and files: composer.js.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.closest("#composer")) {
      event.preventDefault();
      composer().requestSubmit();
    }
  });

  // `/` anywhere but in a field: the search box.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) { return; }
    var box = document.getElementById("search-q");
    if (!box) { return; }
    event.preventDefault();
    box.focus();
    box.select();
  });

  // The traffic cop: a client message that came in while the manager was typing holds the
  // first press of Send and is shown instead. The stream says only that the conversation
  // received a message, and says it when the worker gets to it, which may be after the page
  // already showed that very message: so Send waits for the timeline the stream refreshes,
  // and is held only when it shows a client message newer than the one on screen when the
  // news came (`seen`); else it goes as it was pressed.
  var held = false, seen = 0;
  function lastInbound() {
    var last = 0;
    document.querySelectorAll("#timeline > li.msg-inbound[data-message]").forEach(function (item) {
      last = Math.max(last, Number(item.dataset.message) || 0);
    });
    return last;
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "composer" || !held) { return; }
    event.preventDefault();
    event.stopPropagation();
    // After the refresh on its way, and never within this submit's own dispatch (where a
    // form's requestSubmit does nothing): a task of its own.
    (refreshing || Promise.resolve()).then(function () {
      return new Promise(function (resolve) { window.setTimeout(resolve, 0); });
    }).then(function () {
      if (!held) { return; }
      held = false;
      if (lastInbound() <= seen) { form.requestSubmit(); return; }  // nothing new: send
      var cop = document.getElementById("cop");
      if (cop) { cop.hidden = false; cop.textContent = form.dataset.newer || cop.dataset.text || ""; }
      var last = document.querySelector("#timeline > li:last-child");
      if (last) { last.scrollIntoView({ block: "end" }); }
    });
  }, true);
  function failed(event) {
    var form = event.detail.elt;
    if (!form || form.id !== "composer") { return; }
    var error = form.querySelector(".composer-error");
    if (!error) { return; }
    var detail = "";
    var xhr = event.detail.xhr;
    try { detail = JSON.parse(xhr.responseText).detail; } catch (e) { detail = xhr ? xhr.statusText : ""; }
    error.textContent = (error.dataset.prefix || "") + (typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  document.addEventListener("htmx:responseError", failed);
  document.addEventListener("htmx:sendError", failed);

  function settle() {
    var timeline = document.getElementById("timeline");
    if (timeline) { timeline.scrollTop = timeline.scrollHeight; }
  }
  document.addEventListener("htmx:afterSettle", settle);
  document.addEventListener("DOMContentLoaded", settle);

  // Where the keyboard was, within a part about to be replaced: the same control (by its
  // id, else by its place in the same conversation's row) takes the focus in the new part.
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  function focusIn(part) {
    var active = document.activeElement;
    if (!active || active === document.body || !part.contains(active)) { return null; }
    var row = active.closest("[data-conversation]");
    var place = row ? Array.prototype.indexOf.call(row.querySelectorAll(FOCUSABLE), active) : -1;
    return { id: active.id, conversation: row && row.dataset.conversation, place: place };
  }
  function refocus(part, was) {
    if (!was) { return; }
    var target = was.id ? part.querySelector("#" + CSS.escape(was.id)) : null;
    if (!target && was.conversation && was.place >= 0) {
      var row = part.querySelector('[data-conversation="' + CSS.escape(was.conversation) + '"]');
      target = row ? row.querySelectorAll(FOCUSABLE)[was.place] : null;
    }
    if (target) { target.focus({ preventScroll: true }); }
  }

  // Live: refresh the parts of the page an event changes, with one request.
  var refreshing = null;
  // Swaps the page made itself (a reply sent, an action): an answer asked for before one
  // of them may be older than what it put on screen.
  var swaps = 0;
  document.addEventListener("htmx:afterSwap", function () { swaps += 1; });
  var again = { list: false, conversation: false };
  function refresh(parts) {
    again.list = again.list || parts.list;
    again.conversation = again.conversation || parts.conversation;
    if (refreshing) { return; }
    refreshing = new Promise(function (resolve) { window.setTimeout(resolve, 30); }).then(function () {
      var want = { list: again.list, conversation: again.conversation };
      again = { list: false, conversation: false };
      var url = window.location.pathname + window.location.search;
      var swapsBefore = swaps;
      return fetch(url, {
        headers: { "HX-Request": "true" }, credentials: "same-origin"
      }).then(function (response) {
        var to = response.headers.get("HX-Redirect");
        if (to) { window.location.href = to; return null; }
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html === null) { return; }
        // A navigation or a swap came meanwhile, or is on its way: its page may be newer
        // than this answer, which is asked for again.
        if (url !== window.location.pathname + window.location.search || swaps !== swapsBefore ||
            document.querySelector(".htmx-request")) {
          again.list = again.list || want.list;
          again.conversation = again.conversation || want.conversation;
          return;
        }
        var page = new DOMParser().parseFromString(html, "text/html");
        var ids = want.list ? ["views", "list-rows"] : [];
        if (want.conversation) { ids.push("timeline"); }
        ids.forEach(function (id) {
          var now = document.getElementById(id), next = page.getElementById(id);
          if (!now || !next) { return; }
          var scroll = now.scrollTop, atBottom = now.scrollHeight - now.scrollTop - now.clientHeight < 40;
          var was = focusIn(now);
          now.replaceWith(next);
          refocus(next, was);
          next.scrollTop = id === "timeline" && atBottom ? next.scrollHeight : scroll;
          if (window.htmx) { window.htmx.process(next); }
        });
      });
    }).catch(function () {}).then(function () {
      refreshing = null;
      if (again.list || again.conversation) { refresh({}); }
    });
  }

  // A live stream's address: with when this page read the hub (its meta), so the stream's
  // hello can say whether a change came between that read and the stream (calls.js and
  // claims.js open theirs here too).
  window.omnihubStream = function (path) {
    var read = document.querySelector("meta[name=omnihub-read-at]");
    return new EventSource(read ? path + "?since=" + encodeURIComponent(read.content) : path);
  };

  var stream = null, streamId = null, lastSeq = 0;
  function listening() {
    if (stream || !workspace() || !window.EventSource) { return; }
    stream = window.omnihubStream("/inbox/stream");
    // Other parts of the workspace listen on the same stream (calls.js: the ringing card).
    document.dispatchEvent(new CustomEvent("omnihub:stream", { detail: stream }));
    stream.addEventListener("hello", function (event) {
      var data = JSON.parse(event.data);
      // A new stream after a lost one: what came meanwhile is unknown, so reload; so too
      // the first one when a change came between the page's read and the stream.
      if (streamId !== null ? data.stream !== streamId : !data.fresh) {
        refresh({ list: true, conversation: true });
      }
      streamId = data.stream;
      lastSeq = data.seq;
      document.documentElement.dataset.live = "on";
    });
    stream.addEventListener("change", function (event) {
      var data = JSON.parse(event.data);
      document.dispatchEvent(new CustomEvent("omnihub:change", { detail: data }));
      var gap = data.seq !== lastSeq + 1;
      lastSeq = data.seq;
      var w = workspace();
      if (!w) { return; }
      var id = String(data.conversation_id);
      var shown = !!document.querySelector('#list-rows [data-conversation="' + id + '"]');
      var opened = openConversation() === id;
      var list = gap || shown || data.views.indexOf(w.dataset.view) >= 0;
      var conversation = gap || opened;
      if (opened && data.topic === "message.received") {
        var text = document.querySelector("#composer textarea");
        if (text && text.value.trim()) {
          if (!held) { seen = lastInbound(); }
          held = true;
        }
      }
      // The views' counts change with any visible conversation.
      if (list || conversation || data.views.length) { refresh({ list: true, conversation: conversation }); }
    });
    stream.addEventListener("presence", function (event) {
      var data = JSON.parse(event.data);
      var w = workspace();
      if (!w || String(data.manager_id) === w.dataset.me) { return; }
      var people = present[data.conversation_id] = present[data.conversation_id] || {};
      var newcomer = !people[data.manager_id];
      people[data.manager_id] = { name: data.name, state: data.state, until: Date.now() + data.seconds * 1000 };
      // Someone just came: say at once that this tab is here too.
      if (newcomer && String(data.conversation_id) === openConversation()) { tell(told.state || "viewing", true); }
      renderPresence();
    });
    // The manager's own notifications (mentioned in a note, assigned, offered): for the page's
    // scripts to show.
    stream.addEventListener("notification", function (event) {
      document.dispatchEvent(new CustomEvent("omnihub:notification", { detail: JSON.parse(event.data) }));
    });
    stream.addEventListener("error", function () { document.documentElement.dataset.live = "off"; });
  }
  // Presence: who else is viewing or typing, from the stream; this tab says its own.
  var present = {};  // conversation id -> manager id -> {name, state, until}
  function renderPresence() {
    var w = workspace();
    if (!w) { return; }
    var now = Date.now();
    document.querySelectorAll("[data-presence]").forEach(function (element) {
      var people = present[element.dataset.presence] || {};
      var viewing = [], typing = [];
      Object.keys(people).forEach(function (id) {
        var who = people[id];
        if (who.until < now) { delete people[id]; return; }
        (who.state === "typing" ? typing : viewing).push(who.name);
      });
      var parts = [];
      if (viewing.length) { parts.push("◉ " + w.dataset.viewing.replace("{names}", viewing.join(", "))); }
      if (typing.length) { parts.push("✎ " + w.dataset.typing.replace("{names}", typing.join(", "))); }
      element.textContent = parts.join(" · ");
    });
  }
  window.setInterval(renderPresence, 2000);
  document.addEventListener("htmx:afterSettle", renderPresence);

  var told = { id: null, state: null, at: 0 };
  function tell(state, force) {
    var id = openConversation();
    var meta = document.querySelector("meta[name=csrf-token]");
    if (!id || !meta) { return; }
    var now = Date.now();
    if (!force && told.id === id && told.state === state && now - told.at < 4000) { return; }
    told = { id: id, state: state, at: now };
    var body = new URLSearchParams({ state: state });
    fetch("/inbox/c/" + id + "/presence", {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": meta.content }
    }).catch(function () {});
  }
  window.setInterval(function () { tell("viewing"); }, 10000);
  document.addEventListener("htmx:afterSettle", function () { tell("viewing"); });
  document.addEventListener("DOMContentLoaded", function () { tell("viewing"); });
  document.addEventListener("input", function (event) {
    if (event.target.closest("#composer")) { tell("typing"); }
  });

  document.addEventListener("DOMContentLoaded", listening);
  window.addEventListener("pagehide", function () { if (stream) { stream.close(); stream = null; } });
})();
