// Conversation actions: a refused take/assign/close shows the page the server sent back (the
// refusal in words next to the buttons); `a` takes the open conversation, `e` closes it.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form.act");
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (form && (status === 403 || status === 409 || status === 422 || status === 400)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable=true], [contenteditable='']");
  }
  var keys = { a: "take", e: "close" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) { return; }
    var action = keys[event.key];
    if (!action || typing(event.target)) { return; }
    var button = document.querySelector('#conv-actions button[data-action="' + action + '"]');
    if (!button || button.disabled) { return; }
    event.preventDefault();
    button.form.requestSubmit(button);
  });
})();
