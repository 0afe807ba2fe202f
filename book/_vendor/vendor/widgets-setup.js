// tfmcourse: glue between the vendored require.js, @jupyter-widgets/html-manager and MathJax 3.
// Loaded after require.js and before html-manager/embed-amd.js (see nb_ipywidgets_js in _config.yml).
// This file is ours, not from npm; tools/vendor_book_assets.sh keeps it when it re-creates the tree.
(function () {
  "use strict";
  // 1. embed-amd.js defines its AMD modules by name and computes webpack's public path (where its
  //    Font Awesome fonts are) from each module's require.js URL, which by default is relative to the
  //    page ("<page dir>/@jupyter-widgets/html-manager/dist/"). Point those names at the vendored
  //    folder, whatever the depth of the page.
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var dir = new URL("html-manager", here).href; // .../vendor/html-manager (query string dropped)
    window.require.config({
      paths: {
        "@jupyter-widgets/html-manager/dist": dir,
        "@jupyter-widgets/html-manager": dir + "/html-manager",
        "@jupyter-widgets/controls": dir + "/controls",
        "@jupyter-widgets/base": dir + "/base",
      },
    });
  }
  // 2. html-manager typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue), which MathJax 3
  //    lacks. Once the deferred MathJax 3 script has run (before DOMContentLoaded; widgets render at
  //    "load"), give it a tiny Hub that forwards to MathJax 3's typesetPromise.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub || typeof mj.version !== "string" || mj.version.charAt(0) !== "3") return;
    mj.Hub = {
      Queue: function (job) {
        var el = Array.isArray(job) ? job[2] : null;
        if (!el) return;
        mj.startup.promise
          .then(function () { return mj.typesetPromise([el]); })
          .catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
      },
    };
  });
})();
