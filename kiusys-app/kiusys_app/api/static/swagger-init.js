// Starts Swagger UI on the page that the service serves at "/" (kiusys_app/api/docs.py).
// A file, not an inline script, so that the page runs under "script-src 'self'".
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    persistAuthorization: false,
    // The online validator would call out to swagger.io.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
