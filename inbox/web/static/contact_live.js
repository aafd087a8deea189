// The contact panel follows changes made elsewhere: the workspace's stream (inbox.js) sends a
// `contact` event when a contact is edited or merged. A panel showing that contact (or the one
// merged into it) is fetched again, unless this manager is editing it or confirming a merge.
(function () {
  "use strict";

  var hooked = null;
  function panelUrl(contactId) {
    var w = document.getElementById("workspace");
    var params = new URLSearchParams();
    if (w && w.dataset.view && w.dataset.view !== "search") { params.set("view", w.dataset.view); }
    if (w && w.dataset.conversation) { params.set("conversation", w.dataset.conversation); }
    var lang = new URLSearchParams(window.location.search).get("lang");
    if (lang === "ru" || lang === "en") { params.set("lang", lang); }
    return "/inbox/contacts/" + encodeURIComponent(contactId) + "/panel?" + params.toString();
  }
  function heard(event) {
    var data = JSON.parse(event.data);
    var panel = document.getElementById("contact-panel");
    if (!panel || !window.htmx) { return; }
    var shown = panel.dataset.contact;
    if (shown !== String(data.contact_id) && shown !== String(data.merged_contact_id)) { return; }
    // The manager's own unfinished form wins over the news.
    if (panel.querySelector("form.contact-edit, .merge-confirm")) { return; }
    window.htmx.ajax("GET", panelUrl(data.contact_id), {
      target: "#contact-panel", select: "#contact-panel", swap: "outerHTML"
    });
  }
  function hook(stream) {
    if (!stream || stream === hooked) { return; }
    hooked = stream;
    stream.addEventListener("contact", heard);
  }
  document.addEventListener("omnihub:stream", function (event) { hook(event.detail); });
})();
