// Starts Redoc on /api/v1/redoc. A file, not an inline script: the page's CSP allows scripts
// from this origin only.
(function () {
  "use strict";
  var root = document.getElementById("redoc");
  // Redoc's <style> elements carry the nonce the page's CSP names (style-src).
  Redoc.init(root.dataset.specUrl, { nonce: root.dataset.styleNonce }, root);
})();
