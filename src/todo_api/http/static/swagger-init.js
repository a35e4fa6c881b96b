// Starts Swagger UI on /docs. A file of its own, not an inline script, so the page's
// Content-Security-Policy can say script-src 'self' and nothing more.
"use strict";
(function () {
  const node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false,
    // The default sends the document to validator.swagger.io for a badge: another origin.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
