// Conversation actions from the keyboard: `a` takes the open conversation, `e` closes it.
(function () {
  "use strict";

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
