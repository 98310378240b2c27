// Coach dashboard: countdowns to a join window or the no-show button (the page reloads when
// one opens, so the button appears), and a confirmation before an outcome that charges.
(() => {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    const at = new Date(el.dataset.countdown);
    const prefix = el.dataset.prefix || "Opens";
    const tick = () => {
      const left = Math.round((at - new Date()) / 1000);
      if (left <= 0) { location.reload(); return; }
      if (left < 3600) {
        el.textContent = `${prefix} in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      }
      setTimeout(tick, 1000);
    };
    tick();
  }
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
