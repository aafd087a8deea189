// The list's selection and bulk bar, the sort choice, the action bar's menus, and a notice
// when a snoozed conversation of mine comes back (from the live stream's change events).
(function () {
  "use strict";

  var selected = {};  // conversation id -> true, kept across live refreshes of the list

  function bulkForm() { return document.getElementById("bulk"); }

  function sync() {
    var form = bulkForm();
    if (!form) { return; }
    var boxes = document.querySelectorAll("#list-rows input.pick");
    var count = 0;
    boxes.forEach(function (box) {
      box.checked = !!selected[box.value];
      if (box.checked) { count += 1; }
      var row = box.closest(".row");
      if (row) { row.classList.toggle("picked", box.checked); }
    });
    // A selected conversation that left the list is no longer selected.
    var shown = {};
    boxes.forEach(function (box) { shown[box.value] = true; });
    Object.keys(selected).forEach(function (id) { if (!shown[id]) { delete selected[id]; } });
    var label = form.querySelector("[data-bulk-count]");
    if (!label) { return; }
    var text = count ? label.dataset.some.replace("{count}", String(count)) : label.dataset.none;
    // Only a real change: the observer below hears this page's own writes too.
    if (label.textContent !== text) { label.textContent = text; }
    form.classList.add("js");
    form.classList.toggle("bulk-active", count > 0);
    var apply = form.querySelector("[data-bulk-apply]");
    if (apply) { apply.disabled = count === 0; }
    var action = form.querySelector("[data-bulk-action]");
    form.querySelectorAll("[data-bulk-for]").forEach(function (field) {
      var on = action && action.value === field.dataset.bulkFor;
      field.hidden = !on;
      field.disabled = !on;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("#list-rows input.pick")) {
      if (target.checked) { selected[target.value] = true; } else { delete selected[target.value]; }
      sync();
    } else if (target.matches && target.matches("[data-bulk-action]")) {
      sync();
    } else if (target.matches && target.matches("[data-sort-form] select")) {
      target.form.requestSubmit();
    }
  });

  // After a bulk action the list is the server's: start with nothing selected.
  document.addEventListener("submit", function (event) {
    if (event.target.id === "bulk") { window.setTimeout(function () { selected = {}; }, 0); }
  });

  // One menu of the action bar open at a time; Escape closes it.
  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (!menu.matches || !menu.matches("details.act-menu") || !menu.open) { return; }
    document.querySelectorAll("details.act-menu[open]").forEach(function (other) {
      if (other !== menu) { other.open = false; }
    });
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var menu = event.target.closest && event.target.closest("details.act-menu[open]");
    if (!menu) { return; }
    menu.open = false;
    var summary = menu.querySelector("summary");
    if (summary) { summary.focus(); }
  });

  // A conversation of mine came back from a snooze (or its client wrote): say so.
  document.addEventListener("omnihub:change", function (event) {
    var data = event.detail || {};
    if (data.topic !== "conversation.reopened" || (data.views || []).indexOf("mine") < 0) { return; }
    var notice = document.getElementById("states-notice");
    if (!notice) { return; }
    back = String(data.conversation_id);
    name();
    notice.hidden = false;
    window.clearTimeout(notice.timer);
    notice.timer = window.setTimeout(function () { notice.hidden = true; back = null; }, 8000);
  });
  // The row comes with the list's refresh, after the event: its name then replaces the id.
  var back = null;
  function name() {
    var notice = document.getElementById("states-notice");
    if (!notice || back === null) { return; }
    var row = document.querySelector('#list-rows [data-conversation="' + back + '"] .who');
    var text = notice.dataset.text.replace("{name}", row ? row.textContent : "#" + back);
    if (notice.textContent !== text) { notice.textContent = text; }
  }

  function settle() {
    name();
    document.querySelectorAll("[data-sort-form]").forEach(function (form) { form.classList.add("auto"); });
    sync();
  }
  document.addEventListener("DOMContentLoaded", function () {
    settle();
    var root = document.body;
    if (root && window.MutationObserver) {
      // The live stream replaces the list's rows: keep the selection on them.
      new MutationObserver(function (records) {
        for (var i = 0; i < records.length; i += 1) {
          if (records[i].addedNodes.length) { settle(); return; }
        }
      }).observe(root, { childList: true, subtree: true });
    }
  });
  document.addEventListener("htmx:afterSettle", settle);
})();
