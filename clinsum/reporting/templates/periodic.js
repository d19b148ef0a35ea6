// The periodic report's only script: show one metric or all, and print. The page works without it.
(() => {
  "use strict";
  const filter = document.getElementById("metric-filter");
  const sections = Array.from(document.querySelectorAll("section.metric"));
  filter.addEventListener("change", () => {
    for (const section of sections) {
      section.hidden = filter.value !== "" && section.dataset.metric !== filter.value;
    }
  });
  document.getElementById("print").addEventListener("click", () => window.print());
  document.body.dataset.ready = "1";
})();
