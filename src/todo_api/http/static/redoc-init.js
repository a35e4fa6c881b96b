// Starts ReDoc on /redoc, from a file of its own for the page's Content-Security-Policy.
"use strict";
(function () {
  const node = document.getElementById("redoc");
  Redoc.init(node.dataset.openapiUrl, { hideDownloadButton: false }, node);
})();
