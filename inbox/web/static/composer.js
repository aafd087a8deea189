// The reply composer: drafts per conversation and kind (reply, note) kept in localStorage
// until sent; canned replies by `/` and colleagues by `@` (a list to pick from with the
// keyboard or the mouse; the server fills a canned reply's variables); the files of a reply
// checked against the size limit; the manager's notifications shown as toasts.
(function () {
  "use strict";

  var script = document.currentScript;
  var dismissLabel = (script && script.dataset.dismiss) || "×";

  function composer() { return document.getElementById("composer"); }
  function kindOf(form) {
    var checked = form.querySelector("input[name=kind]:checked");
    return checked ? checked.value : "reply";
  }
  function draftKey(form, kind) {
    return "omnihub.draft." + form.dataset.conversation + "." + (kind || kindOf(form));
  }
  function textOf(form) { return form.querySelector("textarea[name=text]"); }
  function store(key, value) {
    try {
      if (value) { window.localStorage.setItem(key, value); } else { window.localStorage.removeItem(key); }
    } catch (e) { /* storage full or off: the draft is only lost on reload */ }
  }
  function load(key) {
    try { return window.localStorage.getItem(key) || ""; } catch (e) { return ""; }
  }

  // The form as it is: which kind, its placeholder, the draft of that kind.
  function setUp() {
    var form = composer();
    if (!form || form.dataset.ready === "yes") { return; }
    form.dataset.ready = "yes";
    var kind = kindOf(form);
    form.dataset.kind = kind;
    var text = textOf(form);
    if (!text.value) { text.value = load(draftKey(form, kind)); }
    text.placeholder = text.dataset[kind + "Placeholder"] || text.placeholder;
  }
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:afterSettle", setUp);

  document.addEventListener("change", function (event) {
    var form = event.target.closest("#composer");
    if (!form) { return; }
    if (event.target.name === "kind") {
      // Each kind keeps its own text: the reply waits while a note is written.
      var before = form.dataset.kind, after = kindOf(form), text = textOf(form);
      store(draftKey(form, before), text.value);
      text.value = load(draftKey(form, after));
      form.dataset.kind = after;
      text.placeholder = text.dataset[after + "Placeholder"] || text.placeholder;
      form.querySelector("input[name=mentions]").value = "";
      close();
    } else if (event.target.type === "file") {
      showFiles(form, event.target);
    }
  });

  document.addEventListener("input", function (event) {
    var form = event.target.closest("#composer");
    if (!form || event.target.name !== "text") { return; }
    store(draftKey(form), event.target.value);
    suggest(form, event.target);
  });

  // Files: their names and sizes, and a plain error for one over the limit.
  function tooLarge(form, input) {
    var limit = Number(form.dataset.fileLimit || 0);
    var files = input && input.files ? Array.prototype.slice.call(input.files) : [];
    return files.filter(function (file) { return limit && file.size > limit; });
  }
  function showFiles(form, input) {
    var list = form.querySelector(".files-chosen");
    var error = form.querySelector(".composer-error");
    var names = Array.prototype.map.call(input.files, function (file) {
      return file.name + " (" + Math.max(1, Math.ceil(file.size / 1024)) + " KB)";
    });
    if (list) { list.textContent = names.join(", "); }
    var over = tooLarge(form, input);
    error.textContent = over.length ? form.dataset.fileTooLarge.replace("{name}", over[0].name) : "";
  }

  // Sending: the draft goes (a failure puts it back); files over the limit stop it here.
  var sending = null;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "composer" || event.defaultPrevented) { return; }
    var files = form.querySelector("input[type=file]");
    var over = form.dataset.kind === "reply" ? tooLarge(form, files) : [];
    if (over.length) {
      event.preventDefault();
      event.stopPropagation();
      form.querySelector(".composer-error").textContent =
        form.dataset.fileTooLarge.replace("{name}", over[0].name);
      return;
    }
    if (files && form.dataset.kind !== "reply") { files.value = ""; }
    close();
    sending = { key: draftKey(form), text: textOf(form).value };
    store(sending.key, "");
  }, true);
  function failed(event) {
    var form = event.detail.elt;
    if (!form || form.id !== "composer" || !sending) { return; }
    store(sending.key, sending.text);
    sending = null;
  }
  document.addEventListener("htmx:responseError", failed);
  document.addEventListener("htmx:sendError", failed);

  // Suggestions: `/` at the start of a word in a reply (canned replies), `@` in a note
  // (managers). What was typed after the sign narrows them.
  var open = null;  // {form, text, sign, start, end, items, active}
  var asked = 0;
  function wordAt(text) {
    var before = text.value.slice(0, text.selectionStart);
    var match = /(^|[\s(,;:])([/@])([^\s/@]{0,40})$/.exec(before);
    if (!match) { return null; }
    return { sign: match[2], typed: match[3], start: before.length - match[3].length - 1, end: before.length };
  }
  function suggest(form, text) {
    var word = wordAt(text);
    var kind = form.dataset.kind;
    if (!word || (word.sign === "/" && kind !== "reply") || (word.sign === "@" && kind !== "note")) {
      close();
      return;
    }
    var url = word.sign === "/"
      ? "/api/v1/canned-replies?limit=8&q=" + encodeURIComponent(word.typed)
      : "/api/v1/mentionable-managers?q=" + encodeURIComponent(word.typed);
    var ticket = ++asked;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (found) {
        if (ticket !== asked || composer() !== form) { return; }
        var items = found.map(function (item) {
          return word.sign === "/"
            ? { id: item.id, label: "/" + item.shortcut, detail: item.title }
            : { id: item.id, label: "@" + item.name, detail: "", name: item.name };
        });
        show(form, text, word, items);
      })
      .catch(function () {});
  }
  function show(form, text, word, items) {
    var list = form.querySelector("#composer-suggest");
    list.textContent = "";
    open = { form: form, text: text, sign: word.sign, start: word.start, end: word.end, items: items, active: 0 };
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "suggest-none";
      none.textContent = form.dataset.noMatch || "";
      list.appendChild(none);
    }
    items.forEach(function (item, index) {
      var option = document.createElement("li");
      option.id = "composer-suggest-" + index;
      option.setAttribute("role", "option");
      option.dataset.index = String(index);
      var label = document.createElement("span");
      label.className = "suggest-label";
      label.textContent = item.label;
      option.appendChild(label);
      if (item.detail) {
        var detail = document.createElement("span");
        detail.className = "suggest-detail";
        detail.textContent = item.detail;
        option.appendChild(detail);
      }
      list.appendChild(option);
    });
    list.hidden = false;
    text.setAttribute("aria-expanded", "true");
    highlight();
  }
  function highlight() {
    if (!open) { return; }
    var options = open.form.querySelectorAll("#composer-suggest [role=option]");
    options.forEach(function (option, index) {
      option.setAttribute("aria-selected", index === open.active ? "true" : "false");
    });
    if (options[open.active]) {
      open.text.setAttribute("aria-activedescendant", options[open.active].id);
      options[open.active].scrollIntoView({ block: "nearest" });
    } else {
      open.text.removeAttribute("aria-activedescendant");
    }
  }
  function close() {
    asked++;
    var form = composer();
    if (form) {
      var list = form.querySelector("#composer-suggest");
      if (list) { list.hidden = true; list.textContent = ""; }
      var text = textOf(form);
      text.setAttribute("aria-expanded", "false");
      text.removeAttribute("aria-activedescendant");
    }
    open = null;
  }
  function put(text, start, end, value) {
    text.setRangeText(value, start, end, "end");
    text.focus();
    text.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function choose(index) {
    if (!open || !open.items[index]) { return; }
    var chosen = open.items[index], at = open;
    close();
    if (at.sign === "@") {
      var field = at.form.querySelector("input[name=mentions]");
      var ids = field.value ? field.value.split(",") : [];
      if (ids.indexOf(String(chosen.id)) < 0) { ids.push(String(chosen.id)); }
      field.value = ids.join(",");
      put(at.text, at.start, at.end, "@" + chosen.name + " ");
      return;
    }
    var url = "/api/v1/canned-replies/" + chosen.id + "/text?conversation_id=" +
      encodeURIComponent(at.form.dataset.conversation);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body || composer() !== at.form) { return; }
        // What was typed after `/` is still there unless the manager typed on meanwhile.
        var typed = at.text.value.slice(at.start, at.end);
        if (typed.charAt(0) !== "/") { return; }
        put(at.text, at.start, at.end, body.text);
      })
      .catch(function () {});
  }
  document.addEventListener("keydown", function (event) {
    if (!open || event.target !== open.text) { return; }
    var count = open.items.length;
    if (event.key === "Escape") { event.preventDefault(); close(); return; }
    if (!count || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "ArrowDown") { event.preventDefault(); open.active = (open.active + 1) % count; highlight(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); open.active = (open.active + count - 1) % count; highlight(); }
    else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      event.stopPropagation();
      choose(open.active);
    }
  }, true);
  document.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest("#composer-suggest [role=option]");
    if (option) {
      event.preventDefault();  // keep the focus in the text
      choose(Number(option.dataset.index));
      return;
    }
    if (open && !event.target.closest("#composer-suggest")) { close(); }
  });

  // The manager's notifications (a colleague's mention, an assignment): a toast each, with a
  // link to the conversation, until closed.
  function toasts() {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      box.className = "toasts";
      box.setAttribute("role", "status");
      box.setAttribute("aria-live", "polite");
      document.body.appendChild(box);
    }
    return box;
  }
  document.addEventListener("omnihub:notification", function (event) {
    var data = event.detail || {};
    // A conversation back from a snooze: the workspace says so in its own notice, by the
    // client's name (states.js); the notification is for the manager's bot and email.
    if (data.kind === "snooze_ended" && document.getElementById("states-notice")) { return; }
    var lang = document.documentElement.lang === "en" ? "en" : "ru";
    var title = data["title_" + lang] || data.title || "";
    var box = toasts();
    var toast = document.createElement("div");
    toast.className = "toast toast-" + String(data.kind || "").replace(/[^a-z_]/g, "");
    var link = document.createElement("a");
    var workspace = document.getElementById("workspace");
    var view = workspace && workspace.dataset.view && workspace.dataset.view !== "search"
      ? workspace.dataset.view : "open";
    link.href = "/inbox/v/" + encodeURIComponent(view) + "/c/" + Number(data.conversation_id);
    link.textContent = title;
    toast.appendChild(link);
    if (data.data && data.data.note) {
      var note = document.createElement("p");
      note.className = "toast-note";
      note.textContent = data.data.note;
      toast.appendChild(note);
    }
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "toast-close";
    dismiss.setAttribute("aria-label", dismissLabel);
    dismiss.title = dismissLabel;
    dismiss.textContent = "×";
    dismiss.addEventListener("click", function () { toast.remove(); });
    toast.appendChild(dismiss);
    box.appendChild(toast);
    while (box.children.length > 3) { box.removeChild(box.firstChild); }
  });
})();
