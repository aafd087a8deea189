// Keyboard shortcuts of the workspace: `j`/`k` move in the list, `o` or Enter opens, `r` the
// reply box, `n` a note, `?` the list of shortcuts, Esc back to the list on a phone.
// (`/` search is inbox.js's, `a`/`e` actions.js's.) None fires while typing in a field.
(function () {
  "use strict";

  function typing(target) {
    return target.closest && target.closest("input, textarea, select, [contenteditable=true], [contenteditable='']");
  }
  function dialog() { return document.getElementById("keys-help"); }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#list-rows > li.row > a")); }
  function phone() { return window.matchMedia("(max-width: 760px)").matches; }

  // The row the keys move from: the focused one, else the open conversation's.
  function current(links) {
    var at = links.indexOf(document.activeElement);
    if (at >= 0) { return at; }
    return links.findIndex(function (link) { return link.parentElement.classList.contains("selected"); });
  }
  function move(step) {
    var links = rows();
    if (!links.length) { return; }
    var at = current(links);
    var next = at < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(Math.max(at + step, 0), links.length - 1);
    var w = document.getElementById("workspace");
    // On a phone the list must be the pane shown for its rows to take focus.
    if (w && phone() && w.dataset.pane !== "list") { w.dataset.pane = "list"; }
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }
  function open() {
    var links = rows();
    var at = current(links);
    if (at >= 0) { links[at].click(); }
  }
  function compose(kind) {
    var form = document.getElementById("composer");
    if (!form) { return; }
    var choice = form.querySelector('input[name=kind][value="' + kind + '"]');
    if (choice) { choice.checked = true; choice.dispatchEvent(new Event("change", { bubbles: true })); }
    var w = document.getElementById("workspace");
    if (w && phone()) { w.dataset.pane = "conversation"; }
    var text = form.querySelector("textarea[name=text]");
    if (text) { text.focus(); }
  }
  function back() {
    var w = document.getElementById("workspace");
    if (!w || !phone()) { return; }
    if (w.dataset.pane === "contact") { w.dataset.pane = "conversation"; return; }
    if (w.dataset.pane === "conversation") {
      var link = document.querySelector("#conversation .conv-head a.phone-only");
      if (link) { link.click(); } else { w.dataset.pane = "list"; }
    }
  }

  var opener = null;
  function showHelp() {
    var box = dialog();
    if (!box || box.open) { return; }
    opener = document.activeElement;
    box.showModal();
    var close = box.querySelector("[data-keys-close]");
    if (close) { close.focus(); }
  }
  document.addEventListener("close", function (event) {
    if (event.target === dialog() && opener && document.contains(opener)) { opener.focus(); }
  }, true);
  document.addEventListener("click", function (event) {
    // The top bar's "?" button opens the same dialog as the key does.
    if (event.target.closest && event.target.closest("[data-keys-open]")) { showHelp(); return; }
    var box = dialog();
    if (!box || !box.open) { return; }
    // The close button, or a click on the backdrop (outside the dialog's box).
    if (event.target.closest("[data-keys-close]") || event.target === box) { box.close(); }
  });

  var actions = { j: function () { move(1); }, k: function () { move(-1); }, o: open,
    r: function () { compose("reply"); }, n: function () { compose("note"); }, "?": showHelp,
    Escape: back };

  document.addEventListener("keydown", function (event) {
    var box = dialog();
    if (box && box.open) {
      // Focus stays inside the dialog: Tab wraps from the last control to the first.
      if (event.key === "Tab") {
        var controls = box.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])");
        if (!controls.length) { return; }
        var first = controls[0], last = controls[controls.length - 1];
        if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
        else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
      }
      return;  // Esc closes the dialog by itself; no other shortcut under it.
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) { return; }
    if (typing(event.target)) { return; }
    var action = actions[event.key];
    if (!action) { return; }
    if (event.key === "Escape" && !phone()) { return; }
    event.preventDefault();
    action();
  });
})();
