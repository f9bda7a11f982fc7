// Starts Swagger UI on /docs from the vendored bundle. A served file, not an inline script, so the page
// works under a Content-Security-Policy that allows scripts from this origin only.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl || "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // The online validator badge would call another host; everything here stays on this server.
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
