// The ringing call's card on every workspace page: the live stream says a call rings for
// this manager, the card comes from the hub (/calls/ring/{id}, rendered and escaped there),
// and it goes when the call is answered or ends, or when the manager dismisses it. The calls
// page itself refreshes its lists on every call event and every change of a task.
(function () {
  "use strict";

  var hooked = null;
  var over = {};  // call id -> true once answered, ended or dismissed

  function holder() {
    var box = document.getElementById("ring-cards");
    if (!box) {
      box = document.createElement("div");
      box.id = "ring-cards";
      box.className = "ring-cards";
      box.setAttribute("aria-live", "polite");
      document.body.appendChild(box);
    }
    return box;
  }

  function cardOf(id) {
    return document.querySelector('#ring-cards [data-call="' + id + '"]');
  }

  function drop(id) {
    over[id] = true;
    var card = cardOf(id);
    if (!card) { return; }
    var hadFocus = card.contains(document.activeElement);
    card.remove();
    if (hadFocus && document.body) { document.body.focus(); }
  }

  function show(id) {
    if (over[id] || cardOf(id)) { return; }
    fetch("/calls/ring/" + id, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || over[id] || cardOf(id)) { return; }
        var page = new DOMParser().parseFromString(html, "text/html");
        var card = page.querySelector(".ring-card");
        if (!card || card.dataset.state !== "ringing") { return; }
        holder().appendChild(document.importNode(card, true));
      })
      .catch(function () {});
  }

  // The calls page: its lists again from the hub, soon after a call event but at most every
  // two seconds (a busy line sends many); not while the manager is on one of its buttons
  // (the refresh would take their place away).
  var pending = null, lastRefresh = 0, pagedOn = false;
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-more-callbacks]")) { pagedOn = true; }
  });
  function refreshPage() {
    if (pending || !document.getElementById("calls")) { return; }
    var wait = Math.max(300, 2000 - (Date.now() - lastRefresh));
    pending = window.setTimeout(function () {
      pending = null;
      lastRefresh = Date.now();
      var now = document.getElementById("calls");
      if (!now) { return; }
      if (now.contains(document.activeElement) && document.activeElement !== document.body) {
        refreshPage();
        return;
      }
      var url = window.location.pathname + window.location.search;
      // Paged on with "more": as many callbacks again, not only the first page.
      var shown = document.querySelectorAll("#callbacks > li.callback").length;
      var asked = url;
      if (pagedOn && shown) { asked += (window.location.search ? "&" : "?") + "shown=" + shown; }
      fetch(asked, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          var current = document.getElementById("calls");
          if (html === null || !current || url !== window.location.pathname + window.location.search) { return; }
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("calls");
          if (!next) { return; }
          var fresh = document.importNode(next, true);
          current.replaceWith(fresh);
          if (window.htmx) { window.htmx.process(fresh); }
        })
        .catch(function () {});
    }, wait);
  }

  function heard(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (typeof data.call_id !== "number") { return; }
    var id = String(data.call_id);
    if (data.topic === "call.ringing" && data.state === "ringing") { show(id); }
    else { drop(id); }
    refreshPage();
  }

  // A callback marked done (or reopened, moved) by anyone: the stream's `change` of a task.
  function changed(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (typeof data.topic === "string" && data.topic.indexOf("task.") === 0) { refreshPage(); }
  }

  function hook(stream) {
    if (!stream || stream === hooked) { return; }
    hooked = stream;
    stream.addEventListener("call", heard);
    stream.addEventListener("change", changed);
  }

  // The workspace's own stream (inbox.js) when the page has one; else one of our own.
  document.addEventListener("omnihub:stream", function (event) { hook(event.detail); });
  document.addEventListener("DOMContentLoaded", function () {
    if (hooked || !window.EventSource || !document.querySelector("meta[name=csrf-token]")) { return; }
    var own = window.omnihubStream("/inbox/stream");
    hook(own);
    // Live from here on (as the workspace says of its own stream); a change that came
    // between the page's read and the stream: the calls page reloads its list.
    own.addEventListener("hello", function (event) {
      document.documentElement.dataset.live = "on";
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (!data.fresh) { refreshPage(); }
    });
    window.addEventListener("pagehide", function () { own.close(); });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-ring-dismiss]");
    if (button) { drop(button.dataset.ringDismiss); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) { return; }
    var card = event.target.closest(".ring-card");
    if (card) { drop(card.dataset.call); }
  });
})();
