// Starts Swagger UI on /api/v1/docs. A file, not an inline script: the page's CSP allows
// scripts from this origin only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // By default a spec served from anywhere but localhost is sent to validator.swagger.io
    // for a badge: nothing leaves here.
    validatorUrl: null,
  });
})();
