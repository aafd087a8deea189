/* omnihub web form: put <script src="ORIGIN/forms/KEY/embed.js" async></script> where the form goes.
   Optional attributes: data-lang="ru|en", data-target="#element-id". */
(function () {
  var origin = {{ origin }}, key = {{ key }}, title = {{ title }}, titles = {{ titles }};
  var script = document.currentScript;
  var scripts = document.getElementsByTagName("script");
  if (!script) {
    for (var i = scripts.length - 1; i >= 0; i--) {
      if ((scripts[i].src || "").indexOf("/forms/" + key + "/embed.js") !== -1) { script = scripts[i]; break; }
    }
  }
  var data = (script && script.dataset) || {};
  var params = "embed=1&page=" + encodeURIComponent(location.href) +
    "&referrer=" + encodeURIComponent(document.referrer || "") +
    (data.lang ? "&lang=" + encodeURIComponent(data.lang) : "");
  var frame = document.createElement("iframe");
  frame.src = origin + "/forms/" + encodeURIComponent(key) + "?" + params;
  frame.title = (data.lang && titles[data.lang]) || title;
  frame.loading = "lazy";
  frame.style.cssText = "width:100%;min-height:520px;border:0;display:block;";
  var target = data.target && document.querySelector(data.target);
  if (target) { target.appendChild(frame); }
  else if (script && script.parentNode) { script.parentNode.insertBefore(frame, script.nextSibling); }
  else { document.body.appendChild(frame); }
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data || event.data.omnihubForm !== key) return;
    var height = parseInt(event.data.height, 10);
    if (height > 0) frame.style.height = height + "px";
  });
})();
