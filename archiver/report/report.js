(function () {
  "use strict";
  // Progressive enhancement: without this script every footnote is shown. The script only
  // toggles classes and sets textContent; it never builds markup from strings.
  var form = document.getElementById("filters");
  if (!form) { return; }
  var entries = Array.prototype.slice.call(document.querySelectorAll(".entries > .fn"));
  var boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=verdict]"));
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var healthy = { ok: true, redirected: true };
  var texts = entries.map(function (entry) { return entry.textContent.toLowerCase(); });

  function apply() {
    var wanted = {};
    boxes.forEach(function (box) { if (box.checked) { wanted[box.value] = true; } });
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var visible = 0;
    entries.forEach(function (entry, i) {
      var keys = (entry.getAttribute("data-verdicts") || "").split(" ");
      var match = keys.some(function (key) { return wanted[key]; });
      if (match) {
        match = terms.every(function (term) { return texts[i].indexOf(term) !== -1; });
      }
      entry.classList.toggle("is-hidden", !match);
      if (match) { visible += 1; }
    });
    shown.textContent = visible === entries.length
      ? "Showing all " + entries.length + " footnotes."
      : "Showing " + visible + " of " + entries.length + " footnotes.";
  }

  function setAll(predicate) {
    boxes.forEach(function (box) { box.checked = predicate(box.value); });
    apply();
  }

  // A deep link (#fn-12) must land on its footnote even when a filter hides it.
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    if (target && target.classList.contains("is-hidden")) {
      search.value = "";
      setAll(function () { return true; });
      target.scrollIntoView();
    }
  }

  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  document.getElementById("show-all").addEventListener("click", function () {
    search.value = "";
    setAll(function () { return true; });
  });
  document.getElementById("show-problems").addEventListener("click", function () {
    setAll(function (key) { return !healthy[key]; });
  });
  window.addEventListener("hashchange", reveal);
  form.hidden = false;
  apply();
  reveal();
}());
